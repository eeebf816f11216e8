//! The row format of a chunk object: the text format `LOAD DATA` reads with
//! `FIELDS TERMINATED BY '\t' ESCAPED BY '\\' LINES TERMINATED BY '\n'` and `CHARACTER SET binary`.
//! Values travel as the server's own text form, bytes unchanged (the dump session uses
//! `SET NAMES binary`), so binary strings, JSON, spatial values and any character set round-trip
//! losslessly; NULL is `\N` and the empty string is an empty field.

use serde::{Deserialize, Serialize};

use super::sql;
use super::wire::{Row, WireError};

/// How one column is selected by the dump and assigned by the restore.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Codec {
    /// The value's text form, loaded as is.
    Text,
    /// BIT columns: `LOAD DATA` does not read bit literals, so they travel as unsigned integers.
    BitAsInteger,
    /// FLOAT columns: the server prints FLOAT with 6 significant digits, so they travel as the
    /// DOUBLE with the same value (exact), which rounds back to the same FLOAT on load.
    FloatAsDouble,
    /// MySQL's JSON type: its text form (always utf8mb4), loaded through a variable converted
    /// to utf8mb4, because MySQL refuses a JSON value from a `CHARACTER SET binary` string
    /// (error 3144). MariaDB's JSON is LONGTEXT and travels as [`Codec::Text`].
    Json,
}

/// Picks the codec for an `information_schema.COLUMNS.DATA_TYPE`.
pub(crate) fn codec_for(data_type: &str) -> Codec {
    match data_type.to_ascii_lowercase().as_str() {
        "bit" => Codec::BitAsInteger,
        "float" => Codec::FloatAsDouble,
        "json" => Codec::Json,
        _ => Codec::Text,
    }
}

/// A dumped column: its name and codec.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub(crate) codec: Codec,
}

/// The select list for a chunk query.
pub(crate) fn select_list(columns: &[Column]) -> String {
    columns
        .iter()
        .map(|c| match c.codec {
            Codec::Text | Codec::Json => sql::ident(&c.name),
            Codec::BitAsInteger => format!("CAST({} AS UNSIGNED)", sql::ident(&c.name)),
            Codec::FloatAsDouble => format!("{} + 0E0", sql::ident(&c.name)),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `LOAD DATA LOCAL INFILE` statement for one chunk of `db.table`; `file_name` is what the
/// local-infile handler is asked for.
pub(crate) fn load_statement(file_name: &str, db: &str, table: &str, columns: &[Column]) -> String {
    let mut targets = Vec::with_capacity(columns.len());
    let mut sets = Vec::new();
    for (i, c) in columns.iter().enumerate() {
        match c.codec {
            Codec::Text | Codec::FloatAsDouble => targets.push(sql::ident(&c.name)),
            Codec::BitAsInteger => {
                targets.push(format!("@c{i}"));
                sets.push(format!("{} = CAST(@c{i} AS UNSIGNED)", sql::ident(&c.name)));
            }
            Codec::Json => {
                targets.push(format!("@c{i}"));
                sets.push(format!(
                    "{} = CONVERT(@c{i} USING utf8mb4)",
                    sql::ident(&c.name)
                ));
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

/// Appends one row as a line; a malformed row stops it with the row decoder's error.
///
/// Most rows take the fast path: when no field is NULL or 251 bytes or longer, and the packet
/// holds no byte that needs escaping (length bytes included), the line is the packet itself
/// with each field's one-byte length turned into the separator before it, so the row is copied
/// once and patched. Any other row is encoded field by field.
pub(crate) fn push_row(out: &mut Vec<u8>, row: &Row<'_>) -> Result<(), WireError> {
    if !push_plain_row(out, row.packet(), row.columns()) {
        push_fields(out, row.fields())?;
    }
    Ok(())
}

/// The fast path of [`push_row`]: returns false, having written nothing, when the row does not
/// qualify.
fn push_plain_row(out: &mut Vec<u8>, packet: &[u8], columns: usize) -> bool {
    if columns == 0 || needs_escape(packet) || !short_fields_fill(packet, columns) {
        return false;
    }
    let base = out.len();
    out.extend_from_slice(&packet[1..]);
    out.push(b'\n');
    // Output byte `base + k - 1` is packet byte `k`: the length byte of every field after the
    // first becomes a tab (the last field's end is the newline just pushed).
    let line = &mut out[base..];
    let mut at = 0;
    for _ in 1..columns {
        at += 1 + usize::from(packet[at]);
        line[at - 1] = b'\t';
    }
    true
}

/// Whether `packet` is exactly `columns` fields that each have a one-byte length (under 251, so
/// no NULL and no multi-byte length).
fn short_fields_fill(packet: &[u8], columns: usize) -> bool {
    let mut at = 0;
    for _ in 0..columns {
        match packet.get(at) {
            Some(&len) if len < 0xFB => at += 1 + usize::from(len),
            _ => return false,
        }
    }
    at == packet.len()
}

/// Appends one row given as its fields (`None` for NULL).
fn push_fields<'a>(
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
    use crate::datapath::wire::row_packet as packet;
    use proptest::prelude::*;

    fn encode(fields: &[Option<&[u8]>]) -> Result<Vec<u8>, WireError> {
        let p = packet(fields);
        let mut out = b"previous line\n".to_vec();
        push_row(&mut out, &Row::new(&p, fields.len()))?;
        Ok(out.split_off(14))
    }

    /// What `LOAD DATA` reads back from one line: the oracle the encoder is checked against.
    fn load_data_fields(line: &[u8]) -> Vec<Option<Vec<u8>>> {
        assert_eq!(line.last(), Some(&b'\n'), "a line ends with a newline");
        let mut fields = Vec::new();
        let mut field = Vec::new();
        let mut escaped_n = false;
        let mut bytes = line.iter();
        while let Some(&b) = bytes.next() {
            match b {
                b'\\' => match bytes.next() {
                    Some(b'N') if field.is_empty() => escaped_n = true,
                    Some(b't') => field.push(b'\t'),
                    Some(b'n') => field.push(b'\n'),
                    Some(b'0') => field.push(0),
                    Some(b'\\') => field.push(b'\\'),
                    other => panic!("unexpected escape {other:?} in {line:?}"),
                },
                b'\t' | b'\n' => {
                    fields.push(if escaped_n {
                        None
                    } else {
                        Some(std::mem::take(&mut field))
                    });
                    escaped_n = false;
                }
                _ => {
                    assert!(!escaped_n, "bytes after \\N in {line:?}");
                    field.push(b);
                }
            }
        }
        fields
    }

    #[test]
    fn null_empty_and_special_bytes_are_distinct() {
        let row: [Option<&[u8]>; 4] = [None, Some(b""), Some(b"a\tb\nc\\d\0e"), Some(b"\\N")];
        assert_eq!(
            encode(&row).unwrap(),
            b"\\N\t\ta\\tb\\nc\\\\d\\0e\t\\\\N\n" as &[u8]
        );
    }

    #[test]
    fn a_plain_row_is_copied_whole_and_patched() {
        let fields: [Option<&[u8]>; 3] = [Some(b"12"), Some(&[b'x'; 250]), Some(b"-")];
        let p = packet(&fields);
        let mut out = Vec::new();
        assert!(push_plain_row(&mut out, &p, 3));
        let mut expected = b"12\t".to_vec();
        expected.extend_from_slice(&[b'x'; 250]);
        expected.extend_from_slice(b"\t-\n");
        assert_eq!(out, expected);
        // A NULL, a long field, an empty field or a special byte sends the row field by field.
        for other in [None, Some(&[b'x'; 251][..]), Some(b""), Some(b"a\\b")] {
            let p = packet(&[Some(b"1"), other]);
            assert!(!push_plain_row(&mut Vec::new(), &p, 2), "{other:?}");
        }
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

    fn field() -> impl Strategy<Value = Option<Vec<u8>>> {
        let byte = prop_oneof![
            4 => prop::sample::select(b"09az-\t\n\\\0\xfb\xff".to_vec()),
            1 => any::<u8>(),
        ];
        let len = prop_oneof![0..12usize, 245..260usize, Just(92), Just(9), Just(10)];
        prop::option::weighted(
            0.9,
            len.prop_flat_map(move |n| prop::collection::vec(byte.clone(), n)),
        )
    }

    proptest! {
        #[test]
        fn every_row_reads_back_as_its_fields(fields in prop::collection::vec(field(), 1..6)) {
            let view: Vec<Option<&[u8]>> = fields.iter().map(|f| f.as_deref()).collect();
            let line = encode(&view).unwrap();
            prop_assert_eq!(load_data_fields(&line), fields);
        }

        #[test]
        fn malformed_rows_fail_and_never_panic(
            bytes in prop::collection::vec(prop::sample::select(vec![0u8, 1, 2, 5, b'a', 0xFB, 0xFC, 0xFE, 0xFF]), 0..24),
            columns in 1usize..5,
        ) {
            let mut out = Vec::new();
            if push_row(&mut out, &Row::new(&bytes, columns)).is_ok() {
                prop_assert_eq!(load_data_fields(&out).len(), columns);
            }
        }
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
    fn mysql_json_is_loaded_as_utf8mb4_text() {
        let cols = [
            Column {
                name: "js".into(),
                codec: codec_for("json"),
            },
            Column {
                name: "b".into(),
                codec: codec_for("bit"),
            },
        ];
        let stmt = load_statement("x", "d", "t", &cols);
        assert!(
            stmt.ends_with(
                "(@c0, @c1) SET `js` = CONVERT(@c0 USING utf8mb4), `b` = CAST(@c1 AS UNSIGNED)"
            ),
            "{stmt}"
        );
        assert_eq!(select_list(&cols), "`js`, CAST(`b` AS UNSIGNED)");
        // MariaDB reports its JSON columns as longtext: plain text.
        assert_eq!(codec_for("longtext"), Codec::Text);
    }

    #[test]
    fn a_malformed_row_fails() {
        // a field that runs past the packet; bytes left after the last field
        for p in [&[1u8, b'a', 5, b'b'][..], &[1, b'a', 1, b'b', 7]] {
            assert!(push_row(&mut Vec::new(), &Row::new(p, 2)).is_err(), "{p:?}");
        }
    }
}
