//! An Event the state machine asks the lead to record. Apart from the report that collects them
//! so that the rules which raise their own (expel on proof) need not import the report.

/// An Event to record on the `MySQLCluster`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub warning: bool,
    pub(crate) reason: &'static str,
    pub message: String,
}
