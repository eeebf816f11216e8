//! Real MySQL 9.7 members for the tests, run from a Kubernetes pod spec without a kubelet: the
//! root filesystem built by `e2e/lib/install-mysql97.sh`, one network namespace per member on a
//! bridge, volumes and users as the spec says. Needs root.
//!
//! - [`net`]: bridge, network namespaces, cutting a member off;
//! - [`pod`]: what the pod spec asks for (volumes, env, argv, user);
//! - [`spawn`]: starting one container process (namespaces, mounts, chroot, user);
//! - [`members`]: a cluster's members and the kubelet's and the network's operations on them.

#![allow(dead_code)]

pub mod members;
pub mod net;
pub mod pod;
pub mod spawn;

use std::path::PathBuf;

/// The root filesystem with MySQL 9.7, or `None` (the test returns early) outside CI when it
/// was never built or this process is not root. Under `CI=true` both are failures.
pub fn rootfs() -> Option<PathBuf> {
    let cache = std::env::var("IOP_CACHE").unwrap_or_else(|_| {
        format!(
            "{}/.cache/innodb-operator",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let root = PathBuf::from(cache).join("mysql97/rootfs");
    // SAFETY: geteuid has no side effects.
    let problem = if unsafe { libc::geteuid() } != 0 {
        Some("the real-MySQL tests need root (namespaces, mounts, chroot)".to_string())
    } else if !root.join("usr/sbin/mysqld").exists() {
        Some(format!(
            "no MySQL 9.7 root filesystem in {}: run e2e/lib/install-mysql97.sh (~1.5 min cold)",
            root.display()
        ))
    } else {
        None
    };
    match problem {
        None => Some(root),
        Some(p) if in_ci() => panic!("{p}"),
        Some(p) => {
            eprintln!("SKIPPED: {p}");
            None
        }
    }
}

/// Every column of every row as text (`None` for NULL): what the tests compare.
pub fn text_rows(rows: Vec<mysql_async::Row>) -> Vec<Vec<Option<String>>> {
    rows.into_iter()
        .map(|mut r| {
            (0..r.len())
                .map(|i| r.take::<Option<String>, _>(i).flatten())
                .collect()
        })
        .collect()
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}
