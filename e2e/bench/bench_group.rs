//! The real-9.7 benches' group (`clone_join`, `failover_real`): included by each.

use crate::group::Group;

/// Cluster `name` with `spec` on real members (the operator's warnings logged), or `None` when
/// the real-MySQL tier is skipped (outside CI only).
pub fn start(name: &str, spec: &str) -> Option<Group> {
    let rootfs = crate::realmysql::rootfs()?;
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_ansi(false)
        .try_init();
    Some(tokio::task::block_in_place(|| {
        Group::start(&rootfs, name, spec)
    }))
}
