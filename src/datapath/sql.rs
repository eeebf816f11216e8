//! Quoting for identifiers and string literals the dump and restore put into SQL text.

/// `name` as a backquoted identifier (embedded backquotes doubled).
pub(crate) fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `db`.`table`.
pub(crate) fn qualified(db: &str, table: &str) -> String {
    format!("{}.{}", ident(db), ident(table))
}

/// A single-quoted string literal that is safe with or without `NO_BACKSLASH_ESCAPES`
/// (quotes are doubled; backslashes never appear unescaped because they are rejected by callers
/// that build literals from untrusted text, and doubled here otherwise).
pub(crate) fn literal(text: &str) -> String {
    if text.contains('\\') {
        // Backslash semantics depend on sql_mode; hex is unambiguous.
        let hex: String = text.bytes().map(|b| format!("{b:02x}")).collect();
        return format!("_utf8mb4 X'{hex}'");
    }
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_double_backquotes() {
        assert_eq!(ident("a`b"), "`a``b`");
        assert_eq!(qualified("d", "t"), "`d`.`t`");
    }

    #[test]
    fn literals_survive_quotes_and_backslashes() {
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(literal("a\\b"), "_utf8mb4 X'615c62'");
    }
}
