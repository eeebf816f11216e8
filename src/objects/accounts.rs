//! The MySQL accounts a cluster has, each with its credentials Secret.

/// The accounts a cluster needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Account {
    /// MySQL `root`, for people; the operator does not use it after bootstrap.
    Root,
    /// The operator's own account (Group Replication admin, clone, account management).
    Admin,
    /// Group Replication recovery and clone donor.
    Replication,
    /// MySQL Router.
    Router,
    /// Backup Jobs.
    Backup,
}

impl Account {
    pub const ALL: [Account; 5] = [
        Account::Root,
        Account::Admin,
        Account::Replication,
        Account::Router,
        Account::Backup,
    ];

    /// Suffix of the Secret's name: `C-<suffix>`.
    pub fn suffix(self) -> &'static str {
        match self {
            Account::Root => "root",
            Account::Admin => "admin",
            Account::Replication => "replication",
            Account::Router => "router",
            Account::Backup => "backup",
        }
    }

    /// The MySQL user name.
    pub fn user(self) -> &'static str {
        match self {
            Account::Root => "root",
            Account::Admin => "innodb_admin",
            Account::Replication => "innodb_repl",
            Account::Router => "innodb_router",
            Account::Backup => "innodb_backup",
        }
    }
}
