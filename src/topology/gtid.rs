//! GTID sets: parsing MySQL's text form and set arithmetic.
//!
//! The text form is `uuid:interval[:interval...][,uuid:...]` where an interval is `n` or `a-b`
//! (inclusive). MySQL 8.3+ adds tags: inside one uuid's segment a token that starts with a letter
//! or `_` names the tag of the intervals that follow (`uuid:1-5:blue:1-3`). The operator compares
//! sets to find errant transactions and to choose the member to reboot a group from; the server's
//! `GTID_SUBSET` / `GTID_SUBTRACT` do the same on the server side.

use std::collections::BTreeMap;
use std::fmt;

use thiserror::Error;

/// What was wrong with a GTID set's text.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum GtidError {
    #[error("GTID set segment {segment:?} has no ':' between the source UUID and its intervals")]
    MissingColon { segment: String },
    #[error("{uuid:?} in a GTID set is not a UUID (expected 8-4-4-4-12 hex digits)")]
    BadUuid { uuid: String },
    #[error(
        "GTID tag {tag:?} is invalid (1-32 characters: a letter or '_', then letters, digits or '_')"
    )]
    BadTag { tag: String },
    #[error("GTID interval {interval:?} is invalid (expected 'n' or 'a-b' with 1 <= a <= b)")]
    BadInterval { interval: String },
}

/// A server or group UUID, kept as its 128-bit value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uuid(u128);

impl Uuid {
    pub const fn from_u128(value: u128) -> Self {
        Uuid(value)
    }

    /// Parses the 8-4-4-4-12 hex form (either case).
    pub fn parse(text: &str) -> Result<Self, GtidError> {
        let bad = || GtidError::BadUuid {
            uuid: text.to_string(),
        };
        let groups: Vec<&str> = text.split('-').collect();
        let lens = [8, 4, 4, 4, 12];
        let shaped = groups.len() == 5
            && groups
                .iter()
                .zip(lens)
                .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()));
        if !shaped {
            return Err(bad());
        }
        u128::from_str_radix(&groups.concat(), 16)
            .map(Uuid)
            .map_err(|_| bad())
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = format!("{:032x}", self.0);
        write!(
            f,
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }
}

/// The source of a GTID: the server (or group) UUID and an optional tag (8.3+).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Source {
    pub(crate) uuid: Uuid,
    pub(crate) tag: Option<String>,
}

impl Source {
    pub(crate) fn untagged(uuid: Uuid) -> Self {
        Source { uuid, tag: None }
    }
}

/// A set of GTIDs, kept normalised: per source, sorted, disjoint, non-adjacent closed intervals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GtidSet {
    sources: BTreeMap<Source, Vec<(u64, u64)>>,
}

impl GtidSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses MySQL's text form (whitespace and newlines between segments are ignored; the
    /// empty string is the empty set).
    pub fn parse(text: &str) -> Result<Self, GtidError> {
        let mut set = GtidSet::new();
        for raw in text.split(',') {
            let segment: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
            if segment.is_empty() {
                continue;
            }
            let mut tokens = segment.split(':');
            let uuid = Uuid::parse(tokens.next().unwrap_or_default())?;
            let mut tag: Option<String> = None;
            let mut any = false;
            let mut tag_needs_interval = false;
            for token in tokens {
                any = true;
                if token.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
                    if tag_needs_interval {
                        break;
                    }
                    tag = Some(parse_tag(token)?);
                    tag_needs_interval = true;
                    continue;
                }
                tag_needs_interval = false;
                let (start, end) = parse_interval(token)?;
                set.insert_range(
                    Source {
                        uuid,
                        tag: tag.clone(),
                    },
                    start,
                    end,
                );
            }
            if !any {
                return Err(GtidError::MissingColon { segment });
            }
            if tag_needs_interval {
                return Err(GtidError::BadTag {
                    tag: format!("{} (no interval follows it)", tag.unwrap_or_default()),
                });
            }
        }
        Ok(set)
    }

    /// A set holding `uuid:start-end` (untagged).
    pub fn from_range(uuid: Uuid, start: u64, end: u64) -> Self {
        let mut set = GtidSet::new();
        set.insert_range(Source::untagged(uuid), start, end);
        set
    }

    /// Adds the closed interval `start..=end` of `source` (no-op when `start > end`).
    pub(crate) fn insert_range(&mut self, source: Source, start: u64, end: u64) {
        if start > end {
            return;
        }
        let intervals = self.sources.entry(source).or_default();
        intervals.push((start, end));
        normalise(intervals);
    }

    /// Adds the single GTID `uuid:n` (untagged).
    pub fn insert(&mut self, uuid: Uuid, n: u64) {
        self.insert_range(Source::untagged(uuid), n, n);
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Whether `uuid:n` (untagged) is in the set.
    #[cfg(test)]
    pub(crate) fn contains(&self, uuid: Uuid, n: u64) -> bool {
        self.sources
            .get(&Source::untagged(uuid))
            .is_some_and(|iv| iv.iter().any(|&(a, b)| a <= n && n <= b))
    }

    /// The highest transaction number of `uuid` (untagged), 0 when none.
    pub fn last(&self, uuid: Uuid) -> u64 {
        self.sources
            .get(&Source::untagged(uuid))
            .and_then(|iv| iv.last())
            .map_or(0, |&(_, b)| b)
    }

    /// How many transactions the set holds.
    pub fn count(&self) -> u128 {
        self.sources
            .values()
            .flatten()
            .map(|&(a, b)| u128::from(b - a) + 1)
            .sum()
    }

    /// `self ∪ other`.
    pub fn union(&self, other: &GtidSet) -> GtidSet {
        let mut out = self.clone();
        out.extend(other);
        out
    }

    /// `self ← self ∪ other`, in place.
    pub fn extend(&mut self, other: &GtidSet) {
        for (source, intervals) in &other.sources {
            match self.sources.get_mut(source) {
                Some(mine) if mine == intervals => {}
                Some(mine) => {
                    mine.extend_from_slice(intervals);
                    normalise(mine);
                }
                None => {
                    self.sources.insert(source.clone(), intervals.clone());
                }
            }
        }
    }

    /// `self − other` (what `GTID_SUBTRACT(self, other)` returns).
    pub fn subtract(&self, other: &GtidSet) -> GtidSet {
        let mut out = GtidSet::new();
        for (source, intervals) in &self.sources {
            let rest = match other.sources.get(source) {
                None => intervals.clone(),
                Some(remove) => subtract_intervals(intervals, remove),
            };
            if !rest.is_empty() {
                out.sources.insert(source.clone(), rest);
            }
        }
        out
    }

    /// `self ∩ other`.
    #[cfg(test)]
    pub(crate) fn intersection(&self, other: &GtidSet) -> GtidSet {
        self.subtract(&self.subtract(other))
    }

    /// `self ⊆ other` (what `GTID_SUBSET(self, other)` returns).
    pub fn is_subset(&self, other: &GtidSet) -> bool {
        self.subtract(other).is_empty()
    }
}

impl fmt::Display for GtidSet {
    /// The canonical text form (lowercase UUIDs, sorted, `,` between sources).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut current_uuid: Option<Uuid> = None;
        for (source, intervals) in &self.sources {
            if current_uuid == Some(source.uuid) {
                // Same UUID, next tag: continues the segment.
            } else {
                if current_uuid.is_some() {
                    f.write_str(",")?;
                }
                write!(f, "{}", source.uuid)?;
                current_uuid = Some(source.uuid);
            }
            if let Some(tag) = &source.tag {
                write!(f, ":{tag}")?;
            }
            for &(a, b) in intervals {
                if a == b {
                    write!(f, ":{a}")?;
                } else {
                    write!(f, ":{a}-{b}")?;
                }
            }
        }
        Ok(())
    }
}

fn parse_tag(text: &str) -> Result<String, GtidError> {
    let ok = !text.is_empty()
        && text.len() <= 32
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(GtidError::BadTag {
            tag: text.to_string(),
        })
    }
}

fn parse_interval(text: &str) -> Result<(u64, u64), GtidError> {
    let bad = || GtidError::BadInterval {
        interval: text.to_string(),
    };
    let number = |s: &str| -> Result<u64, GtidError> {
        if s.is_empty() || !s.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse::<u64>().map_err(|_| bad())
    };
    let (start, end) = match text.split_once('-') {
        Some((a, b)) => (number(a)?, number(b)?),
        None => {
            let n = number(text)?;
            (n, n)
        }
    };
    if start == 0 || start > end {
        return Err(bad());
    }
    Ok((start, end))
}

/// Sorts and merges overlapping or adjacent intervals in place.
fn normalise(intervals: &mut Vec<(u64, u64)>) {
    intervals.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(intervals.len());
    for &(a, b) in intervals.iter() {
        match merged.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    *intervals = merged;
}

/// `from − remove` for normalised interval lists.
fn subtract_intervals(from: &[(u64, u64)], remove: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for &(mut a, b) in from {
        let mut keep = true;
        for &(ra, rb) in remove {
            if rb < a || ra > b {
                continue;
            }
            if ra > a {
                out.push((a, ra - 1));
            }
            if rb >= b {
                keep = false;
                break;
            }
            a = rb + 1;
        }
        if keep {
            out.push((a, b));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    const A: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    const B: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";

    #[test]
    fn parses_multi_source_text_with_newlines() {
        let text = format!("{}:1-5:7,\n{B}:3", A.to_uppercase());
        let set = GtidSet::parse(&text).unwrap();
        assert_eq!(set.to_string(), format!("{A}:1-5:7,{B}:3"));
        assert_eq!(set.count(), 7);
        let a = Uuid::parse(A).unwrap();
        assert!(set.contains(a, 7));
        assert!(!set.contains(a, 6));
        assert_eq!(set.last(a), 7);
        assert_eq!(a.to_string(), A);
    }

    #[test]
    fn parses_tagged_gtids_of_8_4() {
        let set = GtidSet::parse(&format!("{A}:1-3:blue:1-2:red:5")).unwrap();
        assert_eq!(set.count(), 6);
        assert_eq!(set.to_string(), format!("{A}:1-3:blue:1-2:red:5"));
        let untagged = GtidSet::from_range(Uuid::parse(A).unwrap(), 1, 3);
        assert!(untagged.is_subset(&set));
        assert!(!set.is_subset(&untagged));
    }

    #[test]
    fn empty_text_is_the_empty_set() {
        assert!(GtidSet::parse("").unwrap().is_empty());
        assert!(GtidSet::parse(" \n").unwrap().is_empty());
        assert_eq!(GtidSet::new().to_string(), "");
    }

    #[test]
    fn merges_adjacent_intervals() {
        let set = GtidSet::parse(&format!("{A}:1-3:4-6:8,{A}:7")).unwrap();
        assert_eq!(set.to_string(), format!("{A}:1-8"));
    }

    #[test]
    fn rejects_malformed_text() {
        assert!(matches!(
            GtidSet::parse("not-a-uuid:1"),
            Err(GtidError::BadUuid { .. })
        ));
        assert!(matches!(
            GtidSet::parse(A),
            Err(GtidError::MissingColon { .. })
        ));
        for bad in ["0", "5-3", "1-", "-1", "x1", "99999999999999999999999"] {
            assert!(
                GtidSet::parse(&format!("{A}:{bad}")).is_err(),
                "{bad} should be rejected"
            );
        }
        assert!(matches!(
            GtidSet::parse(&format!("{A}:_{}:1", "x".repeat(40))),
            Err(GtidError::BadTag { .. })
        ));
    }

    #[test]
    fn subtract_and_subset_like_the_server() {
        let a = GtidSet::parse(&format!("{A}:1-10,{B}:1-2")).unwrap();
        let b = GtidSet::parse(&format!("{A}:3-4:8")).unwrap();
        assert_eq!(
            a.subtract(&b).to_string(),
            format!("{A}:1-2:5-7:9-10,{B}:1-2")
        );
        assert!(b.is_subset(&a));
        assert!(!a.is_subset(&b));
        assert_eq!(a.intersection(&b), b);
    }

    fn model(set: &GtidSet) -> BTreeSet<(Uuid, u64)> {
        set.sources
            .iter()
            .flat_map(|(s, iv)| {
                iv.iter()
                    .flat_map(move |&(a, b)| (a..=b).map(move |n| (s.uuid, n)))
            })
            .collect()
    }

    fn arb_set() -> impl Strategy<Value = GtidSet> {
        prop::collection::vec((0..2usize, 1..40u64, 0..6u64), 0..6).prop_map(|ranges| {
            let mut set = GtidSet::new();
            for (u, start, len) in ranges {
                set.insert_range(
                    Source::untagged(Uuid::parse([A, B][u]).unwrap()),
                    start,
                    start + len,
                );
            }
            set
        })
    }

    proptest! {
        #[test]
        fn text_round_trips(s in arb_set()) {
            prop_assert_eq!(GtidSet::parse(&s.to_string()).unwrap(), s);
        }

        #[test]
        fn arithmetic_matches_a_set_model(a in arb_set(), b in arb_set()) {
            let (ma, mb) = (model(&a), model(&b));
            prop_assert_eq!(model(&a.union(&b)), &ma | &mb);
            let mut c = a.clone();
            c.extend(&b);
            prop_assert_eq!(c, a.union(&b));
            prop_assert_eq!(model(&a.subtract(&b)), &ma - &mb);
            prop_assert_eq!(model(&a.intersection(&b)), &ma & &mb);
            prop_assert_eq!(a.is_subset(&b), ma.is_subset(&mb));
            prop_assert_eq!(a.count(), ma.len() as u128);
        }

        #[test]
        fn parse_never_panics(text in ".{0,80}") {
            let _ = GtidSet::parse(&text);
        }
    }
}
