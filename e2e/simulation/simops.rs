//! The operator's [`MemberOps`] against the simulated world: what a member would answer over SQL.

use std::collections::BTreeSet;
use std::sync::Mutex;

use innodb_operator::topology::observe::{
    ClusterInput, Endpoint, GroupMemberRow, MemberState, MemberStatus, Role,
};
use innodb_operator::topology::ops::{MemberOps, OpsError};
use innodb_operator::topology::sql::Capabilities;
use innodb_operator::version::ServerVersion;

use crate::world::{Gr, World};

/// Latency of a read from a healthy member, a slow one, and the observe timeout.
const READ_MS: u64 = 5;
const SLOW_READ_MS: u64 = 200;
const TIMEOUT_MS: u64 = 500;
/// Time one operation takes.
const OPERATION_MS: u64 = 20;

pub struct SimOps<'a> {
    pub world: &'a Mutex<World>,
    /// Host names come from the same function the operator uses.
    pub naming: &'a ClusterInput,
}

impl SimOps<'_> {
    fn reach(&self, w: &mut World, at: &Endpoint) -> Result<(), OpsError> {
        let unreachable = |reason: &str| OpsError::Unreachable {
            endpoint: at.to_string(),
            reason: reason.to_string(),
        };
        let Some(m) = w.members.get(&at.ordinal) else {
            return Err(unreachable("no such host"));
        };
        if !m.running() {
            w.cost_ms = w.cost_ms.max(1);
            return Err(OpsError::Refused {
                endpoint: at.to_string(),
            });
        }
        if m.blocked_until > w.now {
            w.cost_ms = w.cost_ms.max(TIMEOUT_MS);
            return Err(unreachable("timeout"));
        }
        let read = if m.slow_until > w.now {
            SLOW_READ_MS
        } else {
            READ_MS
        };
        w.cost_ms = w.cost_ms.max(read);
        Ok(())
    }

    fn operate(
        &self,
        at: &Endpoint,
        what: &str,
        f: impl FnOnce(&mut World) -> Result<(), String>,
    ) -> Result<(), OpsError> {
        let mut w = self.world.lock().expect("world lock");
        self.reach(&mut w, at)?;
        w.cost_ms += OPERATION_MS;
        f(&mut w).map_err(|message| OpsError::Statement {
            endpoint: at.to_string(),
            what: what.to_string(),
            message,
        })
    }

    fn row(&self, w: &World, o: u32, state: MemberStatus, role: Option<Role>) -> GroupMemberRow {
        GroupMemberRow {
            member_id: w.m(o).uuid.clone(),
            host: self.naming.host(o),
            port: 3306,
            state,
            role,
            version: "8.4.2".into(),
        }
    }

    fn state(&self, w: &World, o: u32) -> MemberState {
        let m = w.m(o);
        let group = match &m.gr {
            Gr::Off => vec![self.row(w, o, MemberStatus::Offline, None)],
            Gr::Error => vec![self.row(w, o, MemberStatus::Error, None)],
            Gr::In {
                group,
                view,
                primary,
                ..
            } => view
                .iter()
                .map(|&v| {
                    let peer = w.m(v);
                    let talks = v == o || (w.linked(o, v) && peer.group() == Some(*group));
                    let state = match (talks, peer.online(w.now)) {
                        (false, _) => MemberStatus::Unreachable,
                        (true, true) => MemberStatus::Online,
                        (true, false) => MemberStatus::Recovering,
                    };
                    let role = if *primary == Some(v) {
                        Role::Primary
                    } else {
                        Role::Secondary
                    };
                    self.row(w, v, state, Some(role))
                })
                .collect(),
        };
        let queue = m.received.subtract(&m.executed).count();
        MemberState {
            server_uuid: m.uuid.clone(),
            capabilities: Capabilities {
                version: ServerVersion::new(8, 4, 2),
                group_replication: true,
                clone: true,
                communication_stack: true,
            },
            gtid_executed: m.executed.clone(),
            gtid_received: m.received.clone(),
            super_read_only: !matches!(&m.gr, Gr::In { primary, .. } if *primary == Some(o)),
            offline_mode: m.offline,
            group,
            applier_queue: u64::try_from(queue).unwrap_or(u64::MAX),
            cloning: m.cloning.is_some(),
            clone_failed: None,
            expel_timeout: Some(m.expel_timeout_s),
            group_name: Some(self.naming.group_name.clone()),
            certificate_end: None,
            group_seeds: None,
            ip_allowlist: None,
        }
    }
}

impl MemberOps for SimOps<'_> {
    async fn observe(&self, at: &Endpoint) -> Result<MemberState, OpsError> {
        let mut w = self.world.lock().expect("world lock");
        self.reach(&mut w, at)?;
        Ok(self.state(&w, at.ordinal))
    }

    async fn bootstrap(&self, at: &Endpoint) -> Result<(), OpsError> {
        self.operate(at, "bootstrap", |w| w.bootstrap(at.ordinal))
    }

    async fn join(&self, at: &Endpoint, restart: bool) -> Result<(), OpsError> {
        self.operate(at, "START GROUP_REPLICATION", |w| {
            w.join(at.ordinal, restart)
        })
    }

    async fn clone_from(&self, at: &Endpoint, donor: &Endpoint) -> Result<(), OpsError> {
        self.operate(at, "CLONE INSTANCE", |w| {
            w.clone_from(at.ordinal, donor.ordinal)
        })
    }

    async fn set_expel_timeout(&self, at: &Endpoint, seconds: u32) -> Result<(), OpsError> {
        self.operate(
            at,
            "SET GLOBAL group_replication_member_expel_timeout",
            |w| w.set_expel_timeout(at.ordinal, seconds),
        )
    }

    async fn admit_clients(&self, at: &Endpoint) -> Result<(), OpsError> {
        self.operate(at, "SET GLOBAL offline_mode = OFF", |w| {
            w.admit_clients(at.ordinal)
        })
    }

    /// The simulated members report no membership settings (their pods never restart for a
    /// scale), so the operator never asks them to change those.
    async fn set_membership(
        &self,
        at: &Endpoint,
        _settings: &innodb_operator::topology::membership::Settings,
    ) -> Result<(), OpsError> {
        self.operate(at, "SET GLOBAL group_replication_group_seeds", |_| {
            Err("the simulator has no membership settings; the operator never asks it".into())
        })
    }

    /// The simulated members have no TLS: nothing to reload (the Secret's end is never known).
    async fn reload_tls(&self, at: &Endpoint) -> Result<(), OpsError> {
        self.operate(at, "ALTER INSTANCE RELOAD TLS", |_| {
            Err("the simulator has no TLS; the operator never asks it to reload".into())
        })
    }

    async fn leave(&self, at: &Endpoint) -> Result<(), OpsError> {
        self.operate(at, "STOP GROUP_REPLICATION", |w| w.leave(at.ordinal))
    }

    async fn set_primary(&self, at: &Endpoint, server_uuid: &str) -> Result<(), OpsError> {
        self.operate(at, "group_replication_set_as_primary", |w| {
            let target = w
                .members
                .iter()
                .find(|(_, m)| m.uuid == server_uuid)
                .map(|(&o, _)| o)
                .ok_or("unknown server_uuid")?;
            w.set_primary(at.ordinal, target)
        })
    }

    async fn force_members(
        &self,
        at: &Endpoint,
        local_addresses: &[String],
    ) -> Result<(), OpsError> {
        let members: BTreeSet<u32> = local_addresses
            .iter()
            .filter_map(|a| {
                self.naming
                    .ordinal_of_host(a.rsplit_once(':').map_or(a.as_str(), |(h, _)| h))
            })
            .collect();
        self.operate(at, "group_replication_force_members", |w| {
            w.force_members(at.ordinal, &members)
        })
    }
}
