//! Facts the restore reads from a table's `SHOW CREATE TABLE` text (pure): which secondary
//! indexes can be built after the rows are in, and whether the table has an AUTO_INCREMENT column.
//!
//! The server prints one column, key or constraint per line, indented by two spaces, between the
//! `CREATE TABLE ... (` line and the `) ENGINE=...` line; anything else is left as it is.

/// A CREATE TABLE statement with its plain secondary indexes taken out, and the `ALTER TABLE`
/// clauses that add them back once the table is loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Deferred {
    pub(crate) create: String,
    /// `ADD KEY ...` clauses in the original order; empty when nothing is deferred.
    pub(crate) add_indexes: Vec<String>,
}

/// Takes the plain (non-unique, non-fulltext, non-spatial) secondary indexes out of `create`.
///
/// Loading rows into a table without them and adding them in one `ALTER TABLE` afterwards lets
/// InnoDB build each index by sorting instead of inserting every entry at a random place. Unique
/// keys stay (a duplicate must fail the load of its chunk, not a late `ALTER`), so does a key that
/// starts with the AUTO_INCREMENT column (the server requires one), and so does every index of a
/// table with foreign keys (a foreign key may need one of them, and the server would otherwise
/// create a different index for it).
pub(crate) fn defer_indexes(create: &str) -> Deferred {
    let unchanged = || Deferred {
        create: create.to_string(),
        add_indexes: vec![],
    };
    let lines: Vec<&str> = create.lines().collect();
    let Some(open) = lines.iter().position(|l| l.trim_end().ends_with('(')) else {
        return unchanged();
    };
    let Some(close) = lines.iter().rposition(|l| l.starts_with(')')) else {
        return unchanged();
    };
    if close <= open + 1 {
        return unchanged();
    }
    let body: Vec<&str> = lines[open + 1..close]
        .iter()
        .map(|l| l.trim_end().trim_end_matches(','))
        .collect();
    if body.iter().any(|l| !l.starts_with("  ")) || body.iter().any(|l| is_foreign_key(l)) {
        return unchanged();
    }
    let auto = auto_increment_column(create).map(|c| format!("({c}"));
    let (keys, kept): (Vec<&str>, Vec<&str>) = body.iter().partition(|l| {
        l.starts_with("  KEY ") && auto.as_ref().is_none_or(|a| !l.contains(a.as_str()))
    });
    if keys.is_empty() || kept.is_empty() {
        return unchanged();
    }
    let mut out: Vec<String> = lines[..=open].iter().map(|l| l.to_string()).collect();
    out.push(kept.join(",\n"));
    out.extend(lines[close..].iter().map(|l| l.to_string()));
    Deferred {
        create: out.join("\n"),
        add_indexes: keys
            .iter()
            .map(|k| format!("ADD {}", k.trim_start()))
            .collect(),
    }
}

fn is_foreign_key(line: &str) -> bool {
    let l = line.trim_start();
    l.starts_with("CONSTRAINT ") && l.contains(" FOREIGN KEY ") || l.starts_with("FOREIGN KEY ")
}

/// Whether a column of the table is AUTO_INCREMENT (the `AUTO_INCREMENT=n` table option on the
/// closing line does not count).
pub(crate) fn has_auto_increment(create: &str) -> bool {
    auto_increment_column(create).is_some()
}

/// The quoted name of the AUTO_INCREMENT column, as the statement spells it.
fn auto_increment_column(create: &str) -> Option<&str> {
    let line = create
        .lines()
        .find(|l| l.starts_with("  `") && l.contains(" AUTO_INCREMENT"))?
        .trim_start();
    // The name is backquoted with embedded backquotes doubled: find the closing one.
    let bytes = line.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        if bytes[i] == b'`' {
            if bytes.get(i + 1) == Some(&b'`') {
                i += 2;
                continue;
            }
            return Some(&line[..=i]);
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SBTEST: &str = "CREATE TABLE `sbtest1` (\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n  \
        `k` int(11) NOT NULL DEFAULT 0,\n  `c` char(120) NOT NULL DEFAULT '',\n  \
        PRIMARY KEY (`id`),\n  KEY `k_1` (`k`),\n  UNIQUE KEY `u` (`c`),\n  \
        KEY `kc` (`k`,`c`) COMMENT 'x'\n) ENGINE=InnoDB AUTO_INCREMENT=1000001 \
        DEFAULT CHARSET=latin1\n PARTITION BY HASH (`id`)";

    #[test]
    fn plain_keys_move_to_the_alter_and_the_rest_stays() {
        let d = defer_indexes(SBTEST);
        assert_eq!(
            d.add_indexes,
            ["ADD KEY `k_1` (`k`)", "ADD KEY `kc` (`k`,`c`) COMMENT 'x'"]
        );
        assert_eq!(
            d.create,
            "CREATE TABLE `sbtest1` (\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n  \
             `k` int(11) NOT NULL DEFAULT 0,\n  `c` char(120) NOT NULL DEFAULT '',\n  \
             PRIMARY KEY (`id`),\n  UNIQUE KEY `u` (`c`)\n) ENGINE=InnoDB AUTO_INCREMENT=1000001 \
             DEFAULT CHARSET=latin1\n PARTITION BY HASH (`id`)"
        );
    }

    #[test]
    fn the_last_kept_line_loses_its_comma() {
        let d = defer_indexes(
            "CREATE TABLE `t` (\n  `a` int,\n  `b` int,\n  KEY `b` (`b`)\n) ENGINE=InnoDB",
        );
        assert_eq!(
            d.create,
            "CREATE TABLE `t` (\n  `a` int,\n  `b` int\n) ENGINE=InnoDB"
        );
        assert_eq!(d.add_indexes, ["ADD KEY `b` (`b`)"]);
    }

    #[test]
    fn tables_with_foreign_keys_or_no_plain_keys_are_unchanged() {
        for create in [
            "CREATE TABLE `c` (\n  `id` int NOT NULL,\n  `p` int,\n  PRIMARY KEY (`id`),\n  \
             KEY `p` (`p`),\n  CONSTRAINT `c_ibfk_1` FOREIGN KEY (`p`) REFERENCES `parent` (`id`)\n) ENGINE=InnoDB",
            "CREATE TABLE `t` (\n  `id` int NOT NULL,\n  PRIMARY KEY (`id`),\n  \
             FULLTEXT KEY `f` (`id`)\n) ENGINE=InnoDB",
            "CREATE TABLE `t` (`id` int, KEY (`id`)) ENGINE=InnoDB",
            "not a create statement",
        ] {
            assert_eq!(
                defer_indexes(create),
                Deferred {
                    create: create.to_string(),
                    add_indexes: vec![]
                },
                "{create}"
            );
        }
    }

    #[test]
    fn a_key_the_auto_increment_column_needs_stays() {
        let create = "CREATE TABLE `t` (\n  `a``b` int NOT NULL AUTO_INCREMENT,\n  `c` int,\n  \
                      KEY `x` (`a``b`,`c`),\n  KEY `c` (`c`)\n) ENGINE=InnoDB";
        let d = defer_indexes(create);
        assert_eq!(d.add_indexes, ["ADD KEY `c` (`c`)"]);
        assert!(d.create.contains("KEY `x` (`a``b`,`c`)\n)"), "{}", d.create);
    }

    #[test]
    fn auto_increment_is_a_column_attribute_not_the_table_option() {
        assert!(has_auto_increment(SBTEST));
        assert!(!has_auto_increment(
            "CREATE TABLE `t` (\n  `id` int NOT NULL\n) ENGINE=InnoDB AUTO_INCREMENT=5"
        ));
    }
}
