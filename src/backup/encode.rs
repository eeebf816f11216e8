//! The row format of a chunk object: the text format `LOAD DATA` reads with
//! `FIELDS TERMINATED BY '\t' ESCAPED BY '\\' LINES TERMINATED BY '\n'` and `CHARACTER SET binary`.
//! Values travel as the server's own text form, bytes unchanged (the dump session uses
//! `SET NAMES binary`), so binary strings, JSON, spatial values and any character set round-trip
//! losslessly; NULL is `\N` and the empty string is an empty field.

use serde::{Deserialize, Serialize};

use super::sql;
use super::wire::WireError;

/// How one column is selected by the dump and assigned by the restore.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Codec {
    /// The value's text form, loaded as is.
    Text,
    /// BIT columns: `LOAD DATA` does not read bit literals, so they travel as unsigned integers.
    BitAsInteger,
    /// FLOAT columns: the server prints FLOAT with 6 significant digits, so they travel as the
    /// DOUBLE with the same value (exact), which rounds back to the same FLOAT on load.
    FloatAsDouble,
}

/// Picks the codec for an `information_schema.COLUMNS.DATA_TYPE`.
pub fn codec_for(data_type: &str) -> Codec {
    match data_type.to_ascii_lowercase().as_str() {
        "bit" => Codec::BitAsInteger,
        "float" => Codec::FloatAsDouble,
        _ => Codec::Text,
    }
}

/// A dumped column: its name and codec.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub codec: Codec,
}

/// The select list for a chunk query.
pub fn select_list(columns: &[Column]) -> String {
    columns
        .iter()
        .map(|c| match c.codec {
            Codec::Text => sql::ident(&c.name),
            Codec::BitAsInteger => format!("CAST({} AS UNSIGNED)", sql::ident(&c.name)),
            Codec::FloatAsDouble => format!("{} + 0E0", sql::ident(&c.name)),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `LOAD DATA LOCAL INFILE` statement for one chunk of `db.table`; `file_name` is what the
/// local-infile handler is asked for.
pub fn load_statement(file_name: &str, db: &str, table: &str, columns: &[Column]) -> String {
    let mut targets = Vec::with_capacity(columns.len());
    let mut sets = Vec::new();
    for (i, c) in columns.iter().enumerate() {
        match c.codec {
            Codec::Text | Codec::FloatAsDouble => targets.push(sql::ident(&c.name)),
            Codec::BitAsInteger => {
                targets.push(format!("@c{i}"));
                sets.push(format!("{} = CAST(@c{i} AS UNSIGNED)", sql::ident(&c.name)));
            }
        }
    }
    let mut stmt = format!(
        "LOAD DATA LOCAL INFILE {} INTO TABLE {} CHARACTER SET binary \
         FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({})",
        sql::literal(file_name),
        sql::qualified(db, table),
        targets.join(", ")
    );
    if !sets.is_empty() {
        stmt.push_str(" SET ");
        stmt.push_str(&sets.join(", "));
    }
    stmt
}

/// Appends one row (text-protocol fields, `None` for NULL) as a line; a malformed field stops
/// it with the row decoder's error.
pub fn push_row<'a>(
    out: &mut Vec<u8>,
    fields: impl IntoIterator<Item = Result<Option<&'a [u8]>, WireError>>,
) -> Result<(), WireError> {
    for (i, field) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        match field? {
            None => out.extend_from_slice(b"\\N"),
            Some(b) => push_escaped(out, b),
        }
    }
    out.push(b'\n');
    Ok(())
}

/// Appends `field` with the three bytes that are special in this format escaped, plus NUL.
fn push_escaped(out: &mut Vec<u8>, field: &[u8]) {
    if !needs_escape(field) {
        out.extend_from_slice(field);
        return;
    }
    let mut start = 0;
    for (i, &b) in field.iter().enumerate() {
        let esc = match b {
            b'\\' => b'\\',
            b'\t' => b't',
            b'\n' => b'n',
            0 => b'0',
            _ => continue,
        };
        out.extend_from_slice(&field[start..i]);
        out.push(b'\\');
        out.push(esc);
        start = i + 1;
    }
    out.extend_from_slice(&field[start..]);
}

/// Whether `field` holds a byte that needs escaping. Most values hold none: this branch-free
/// scan (the compiler vectorizes it) lets them be copied whole.
fn needs_escape(field: &[u8]) -> bool {
    field.iter().fold(false, |any, &b| {
        any | matches!(b, 0 | b'\t' | b'\n' | b'\\')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_empty_and_special_bytes_are_distinct() {
        let mut out = Vec::new();
        let row: [Option<&[u8]>; 4] = [None, Some(b""), Some(b"a\tb\nc\\d\0e"), Some(b"\\N")];
        push_row(&mut out, row.map(Ok)).unwrap();
        assert_eq!(out, b"\\N\t\ta\\tb\\nc\\\\d\\0e\t\\\\N\n" as &[u8]);
    }

    #[test]
    fn every_special_byte_is_found_wherever_it_is() {
        for special in [0u8, b'\t', b'\n', b'\\'] {
            for len in [1usize, 15, 16, 17, 64, 200] {
                for pos in [0, len / 2, len - 1] {
                    let mut field = vec![b'a'; len];
                    field[pos] = special;
                    assert!(needs_escape(&field), "{special} at {pos} of {len}");
                    let mut out = Vec::new();
                    push_escaped(&mut out, &field);
                    assert_eq!(out.len(), len + 1);
                }
            }
        }
        assert!(!needs_escape(b"plain text \x01\x7f\xff"));
        assert!(!needs_escape(b""));
    }

    #[test]
    fn load_statement_routes_bits_through_variables() {
        let cols = [
            Column {
                name: "id".into(),
                codec: Codec::Text,
            },
            Column {
                name: "b".into(),
                codec: codec_for("BIT"),
            },
        ];
        let stmt = load_statement("x", "d", "t", &cols);
        assert!(
            stmt.ends_with("(`id`, @c1) SET `b` = CAST(@c1 AS UNSIGNED)"),
            "{stmt}"
        );
        assert_eq!(select_list(&cols), "`id`, CAST(`b` AS UNSIGNED)");
    }

    #[test]
    fn a_malformed_field_stops_the_row() {
        let fields = [Ok(Some(&b"a"[..])), Err(WireError::Malformed("x".into()))];
        assert!(push_row(&mut Vec::new(), fields).is_err());
    }
}
