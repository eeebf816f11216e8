//! The Group Replication group behind the benchmark's fake members: who is ONLINE, who is
//! primary, the view, and the answers a member gives to each statement the operator's SQL
//! operations send. Anything else is answered with an error and recorded, so a change to the
//! operator's statements shows up as a benchmark failure, not as a silently wrong answer.

use innodb_operator::topology::metadata::{ddl, keep};
use innodb_operator::topology::sql;

/// What the fake members report as `@@version` and `MEMBER_VERSION`.
pub const VERSION: &str = "8.4.6";
/// The members' X protocol port, as the metadata names it.
const X_PORT: u16 = 33060;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Online,
    /// Gone: its pod's addresses refuse connections.
    Down,
    /// Cut off by the network: connections open but nothing ever answers.
    Partitioned,
}

#[derive(Debug, Clone)]
pub struct Member {
    /// `report_host`: the pod's name in the `-instances` Service.
    pub host: String,
    pub uuid: String,
    pub status: Status,
}

/// A reply to one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Ok,
    Rows {
        columns: Vec<String>,
        rows: Vec<Vec<Option<String>>>,
    },
    Error(String),
}

/// What the InnoDB Cluster metadata on the members says of the cluster besides its members: the
/// rows the operator keeps there, as it wrote them for this group before the benchmark.
#[derive(Debug, Clone)]
pub struct Registration {
    pub cluster_name: String,
    /// The Router Deployment's name and its Service's DNS name.
    pub router_name: String,
    pub router_address: String,
}

#[derive(Debug)]
pub struct Group {
    /// `group_replication_group_name` (the members' my.cnf): the GTID source too.
    name: String,
    registration: Registration,
    pub members: Vec<Member>,
    pub primary: usize,
    view: u64,
    transactions: u64,
    /// Statements no fake member knows how to answer.
    pub unexpected: Vec<String>,
    /// The members `group_replication_set_as_primary` was asked to make primary, in order.
    pub switchovers: Vec<usize>,
    /// While set, a switchover asked is received (counted) but neither carried out nor
    /// answered: a group action in flight.
    pub hold_switchovers: bool,
    /// Whether the switchovers held are lost when let go (the member that received them died
    /// before the group acted): not carried out, not answered.
    pub lose_held: bool,
}

fn rows<const N: usize>(columns: [&str; N], rows: Vec<[Option<String>; N]>) -> Answer {
    Answer::Rows {
        columns: columns.iter().map(|c| c.to_string()).collect(),
        rows: rows.into_iter().map(Vec::from).collect(),
    }
}

impl Group {
    /// A group `name` of every host, ONLINE, with the first as primary.
    pub fn new(name: String, registration: Registration, hosts: Vec<String>) -> Group {
        let members = hosts
            .into_iter()
            .enumerate()
            .map(|(i, host)| Member {
                host,
                uuid: format!("00000000-0000-4000-8000-{:012x}", i + 1),
                status: Status::Online,
            })
            .collect();
        Group {
            name,
            registration,
            members,
            primary: 0,
            view: 1,
            transactions: 1000,
            unexpected: Vec::new(),
            switchovers: Vec::new(),
            hold_switchovers: false,
            lose_held: false,
        }
    }

    pub fn view_id(&self) -> String {
        format!("17640000000000000:{}", self.view)
    }

    pub fn online(&self) -> Vec<usize> {
        (0..self.members.len())
            .filter(|&i| self.members[i].status == Status::Online)
            .collect()
    }

    /// The next ONLINE member after the primary, in ordinal order.
    pub fn next_primary(&self) -> usize {
        let n = self.members.len();
        (1..n)
            .map(|k| (self.primary + k) % n)
            .find(|&i| self.members[i].status == Status::Online)
            .expect("another ONLINE member")
    }

    /// A switchover (or an election among all members): `to` becomes primary, same view.
    pub fn set_primary(&mut self, to: usize) {
        self.transactions += 50;
        self.primary = to;
    }

    /// The primary is expelled (`how`: its pod is gone or cut off); the rest elect
    /// `next_primary`.
    pub fn fail_primary(&mut self, how: Status) -> (usize, usize) {
        let old = self.primary;
        let new = self.next_primary();
        self.members[old].status = how;
        self.view += 1;
        self.set_primary(new);
        (old, new)
    }

    /// A member comes back and rejoins by itself (`group_replication_autorejoin_tries`).
    pub fn rejoin(&mut self, member: usize) {
        self.members[member].status = Status::Online;
        self.view += 1;
    }

    /// The member `query` asks `group_replication_set_as_primary` to make primary, if it does.
    fn switchover_target(&self, query: &str) -> Option<usize> {
        let args = query
            .trim()
            .strip_prefix("SELECT group_replication_set_as_primary(")?;
        self.members
            .iter()
            .position(|m| args.starts_with(&format!("'{}'", m.uuid)))
    }

    /// Records `query` as received; whether to hold it before answering (a switchover while
    /// [`Group::hold_switchovers`]).
    pub fn receive(&mut self, query: &str) -> bool {
        let Some(to) = self.switchover_target(query) else {
            return false;
        };
        self.switchovers.push(to);
        self.hold_switchovers
    }

    fn gtid_executed(&self) -> String {
        format!("{}:1-{}", self.name, self.transactions)
    }

    /// The metadata schema's answers: the schema as the operator keeps it for this group (a
    /// row for every member, ONLINE or not), so its pass finds nothing to write.
    fn metadata(&self, query: &str) -> Option<Answer> {
        let reg = &self.registration;
        let group = || Some(self.name.clone());
        if query == keep::select_schema_exists() {
            return Some(rows(["COUNT(*)"], vec![[Some("1".into())]]));
        }
        if query == keep::select_version() {
            let v = ddl::VERSION;
            let [major, minor, patch] = [v.major, v.minor, v.patch].map(|n| Some(n.to_string()));
            return Some(rows(
                ["major", "minor", "patch"],
                vec![[major, minor, patch]],
            ));
        }
        if query == keep::select_clusters() {
            let row = [group(), Some(reg.cluster_name.clone()), group()];
            return Some(rows(
                ["cluster_id", "cluster_name", "group_name"],
                vec![row],
            ));
        }
        if query == keep::select_instances() {
            let instances = self
                .members
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    let classic = Some(format!("{}:3306", m.host));
                    [
                        Some((i + 1).to_string()),
                        group(),
                        Some(m.uuid.clone()),
                        classic.clone(),
                        classic,
                        Some(format!("{}:{X_PORT}", m.host)),
                    ]
                })
                .collect();
            return Some(rows(
                [
                    "instance_id",
                    "cluster_id",
                    "uuid",
                    "address",
                    "classic",
                    "x",
                ],
                instances,
            ));
        }
        if query == keep::select_router() {
            let row = [
                Some(reg.router_name.clone()),
                Some(reg.router_address.clone()),
                group(),
            ];
            return Some(rows(["router_name", "address", "cluster_id"], vec![row]));
        }
        None
    }

    /// `me`'s reply to `query` (asked only while `me` is ONLINE).
    pub fn answer(&mut self, me: usize, query: &str) -> Answer {
        let query = query.trim();
        let member = &self.members[me];
        if query == sql::SESSION_SETUP {
            return Answer::Ok;
        }
        if query == sql::SELECT_VERSION {
            return rows(["@@GLOBAL.version"], vec![[Some(VERSION.into())]]);
        }
        if query == sql::select_plugins() {
            return rows(
                ["PLUGIN_NAME", "PLUGIN_STATUS"],
                sql::PROBED_PLUGINS
                    .iter()
                    .map(|p| [Some(p.to_string()), Some("ACTIVE".into())])
                    .collect(),
            );
        }
        if query == sql::select_variables() {
            return rows(
                ["Variable_name", "Value"],
                vec![[
                    Some("group_replication_communication_stack".into()),
                    Some("MYSQL".into()),
                ]],
            );
        }
        if query == sql::SELECT_SELF {
            let read_only = if me == self.primary { "0" } else { "1" };
            return rows(
                ["server_uuid", "gtid_executed", "super_read_only"],
                vec![[
                    Some(member.uuid.clone()),
                    Some(self.gtid_executed()),
                    Some(read_only.into()),
                ]],
            );
        }
        if query == sql::SELECT_RECEIVED {
            return rows(
                ["RECEIVED_TRANSACTION_SET"],
                vec![[Some(self.gtid_executed())]],
            );
        }
        if query == sql::SELECT_MEMBERS {
            let members = self
                .online()
                .into_iter()
                .map(|i| {
                    let role = if i == self.primary {
                        "PRIMARY"
                    } else {
                        "SECONDARY"
                    };
                    [
                        Some(self.members[i].uuid.clone()),
                        Some(self.members[i].host.clone()),
                        Some("3306".into()),
                        Some("ONLINE".into()),
                        Some(role.into()),
                        Some(VERSION.into()),
                    ]
                })
                .collect();
            return rows(
                [
                    "MEMBER_ID",
                    "MEMBER_HOST",
                    "MEMBER_PORT",
                    "MEMBER_STATE",
                    "MEMBER_ROLE",
                    "MEMBER_VERSION",
                ],
                members,
            );
        }
        if query == sql::SELECT_CERTIFICATE_END {
            // The fakes report no end (as a server without TLS would): nothing is reloaded.
            return rows(
                ["Variable_name", "Value"],
                vec![[Some("Ssl_server_not_after".into()), Some(String::new())]],
            );
        }
        if query == sql::SELECT_QUEUE {
            return rows(
                ["COUNT_TRANSACTIONS_REMOTE_IN_APPLIER_QUEUE"],
                vec![[Some("0".into())]],
            );
        }
        if let Some(answer) = self.metadata(query) {
            return answer;
        }
        if query == sql::SELECT_MEMBER_VERSIONS {
            let versions = self
                .online()
                .iter()
                .map(|_| [Some(VERSION.into())])
                .collect();
            return rows(["MEMBER_VERSION"], versions);
        }
        if let Some(to) = self.switchover_target(query) {
            // Carried out once, whoever asked (the group finishes an action its client left).
            if self.primary != to {
                self.set_primary(to);
            }
            let done = format!("Primary server switched to: {}", self.members[to].uuid);
            return rows(["group_replication_set_as_primary"], vec![[Some(done)]]);
        }
        if query == sql::SELECT_CLONE_STATE {
            return rows(["STATE", "ERROR_NO", "ERROR_MESSAGE"], vec![]);
        }
        // mysql_async reads session limits when it connects: `SELECT @@a,@@b`.
        if let Some(names) = query.strip_prefix("SELECT @@")
            && let Some(values) = names
                .split(",")
                .map(|n| match n.trim().trim_start_matches("@@") {
                    "max_allowed_packet" => Some(Some("67108864".to_string())),
                    "wait_timeout" => Some(Some("28800".to_string())),
                    "socket" => Some(None),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
        {
            return Answer::Rows {
                columns: names.split(',').map(|n| n.trim().to_string()).collect(),
                rows: vec![values],
            };
        }
        self.unexpected.push(query.to_string());
        Answer::Error(format!(
            "the benchmark's fake member does not know: {query}"
        ))
    }
}
