//! Cutting a table into primary-key ranges that workers dump in parallel (pure planning).

use serde::{Deserialize, Serialize};

use super::sql;

/// One chunk's key range on the table's split column: `lo <= key < hi`, either bound open.
/// The first chunk has no lower bound and the last no upper bound, so every row lands in exactly
/// one chunk whatever the snapshot holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KeyRange {
    pub(crate) lo: Option<i128>,
    pub(crate) hi: Option<i128>,
}

impl KeyRange {
    /// The whole table.
    pub(crate) const ALL: KeyRange = KeyRange { lo: None, hi: None };

    /// The WHERE clause for this range on `column` (`None` for the whole table).
    pub(crate) fn predicate(&self, column: &str) -> Option<String> {
        let col = sql::ident(column);
        match (self.lo, self.hi) {
            (None, None) => None,
            (Some(lo), None) => Some(format!("{col} >= {lo}")),
            (None, Some(hi)) => Some(format!("{col} < {hi}")),
            (Some(lo), Some(hi)) => Some(format!("{col} >= {lo} AND {col} < {hi}")),
        }
    }
}

/// Integer types a table can be split on.
pub(crate) fn is_splittable_type(data_type: &str) -> bool {
    matches!(
        data_type.to_ascii_lowercase().as_str(),
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint"
    )
}

/// Rows per chunk so a chunk holds about `chunk_bytes` of row data.
pub(crate) fn rows_per_chunk(avg_row_bytes: u64, chunk_bytes: u64) -> u64 {
    (chunk_bytes / avg_row_bytes.max(1)).max(1)
}

/// Splits the key span `[min, max]` into ranges of about `rows_per_chunk` estimated rows,
/// assuming keys are spread evenly over the span (dense auto-increment keys are the common case;
/// sparse keys only make some chunks smaller).
pub(crate) fn plan_ranges(
    min: i128,
    max: i128,
    est_rows: u64,
    rows_per_chunk: u64,
) -> Vec<KeyRange> {
    if max < min || est_rows <= rows_per_chunk {
        return vec![KeyRange::ALL];
    }
    let chunks = est_rows.div_ceil(rows_per_chunk.max(1)) as i128;
    let span = max - min + 1;
    let step = ((span + chunks - 1) / chunks).max(1);
    let mut bounds = Vec::new();
    let mut b = min + step;
    while b <= max {
        bounds.push(b);
        b += step;
    }
    let mut ranges = Vec::with_capacity(bounds.len() + 1);
    let mut lo = None;
    for hi in bounds {
        ranges.push(KeyRange { lo, hi: Some(hi) });
        lo = Some(hi);
    }
    ranges.push(KeyRange { lo, hi: None });
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn small_tables_are_one_chunk() {
        assert_eq!(plan_ranges(1, 100, 100, 1000), vec![KeyRange::ALL]);
        assert_eq!(plan_ranges(5, 1, 10, 1), vec![KeyRange::ALL]);
        assert_eq!(KeyRange::ALL.predicate("id"), None);
    }

    #[test]
    fn ranges_are_open_at_both_ends() {
        let r = plan_ranges(1, 100, 100, 25);
        assert_eq!(r.len(), 4);
        assert_eq!(r[0].predicate("id").unwrap(), "`id` < 26");
        assert_eq!(r[1].predicate("id").unwrap(), "`id` >= 26 AND `id` < 51");
        assert_eq!(r[3].predicate("id").unwrap(), "`id` >= 76");
    }

    proptest! {
        /// Every key in the span (and outside it) falls in exactly one range.
        #[test]
        fn ranges_partition_the_key_space(min in -1000i128..1000, len in 0i128..5000,
                                          rows in 1u64..10_000, per in 1u64..3000,
                                          probe in -3000i128..8000) {
            let max = min + len;
            let ranges = plan_ranges(min, max, rows, per);
            let hits = ranges.iter().filter(|r| {
                r.lo.is_none_or(|lo| probe >= lo) && r.hi.is_none_or(|hi| probe < hi)
            }).count();
            prop_assert_eq!(hits, 1);
            prop_assert!(ranges.len() as u64 <= rows.div_ceil(per).max(1));
        }
    }

    #[test]
    fn rows_per_chunk_never_zero() {
        assert_eq!(rows_per_chunk(0, 10), 10);
        assert_eq!(rows_per_chunk(1000, 10), 1);
        assert_eq!(rows_per_chunk(100, 64 << 20), 671_088);
    }
}
