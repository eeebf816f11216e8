//! The pod network: one bridge (`iop-br0`, the host at `.1`) and, per member slot, a network
//! namespace with a veth pair whose host end is on the bridge. Everything is made with `ip`, named
//! with [`PREFIX`], and removed by prefix, so a crashed run's leftovers are cleaned up first.

use std::fs::File;
use std::process::Command;

pub const BRIDGE: &str = "iop-br0";
/// Prefix of every network namespace and host-side interface of ours.
pub const PREFIX: &str = "iop-rm-";
/// The pod network, /24; the host holds `.1`, slot `s` holds `.(10 + s)`.
const SUBNET: &str = "10.0.97";
/// The control plane's pod network: kwok gives pods addresses from the nodes' podCIDRs, a /24
/// each in the control plane's own /20 of 198.18.0.0/15 (`testenv.sh`). Members at those
/// addresses share the bridge; the host holds the network's last address (in a /20 no control
/// plane is given), which also routes the whole /15 to the bridge.
const KWOK_HOST: &str = "198.19.255.254";
pub const KWOK_PREFIX: u8 = 15;

fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The pod IP of a slot.
pub fn address(slot: u32) -> String {
    assert!(slot < 240, "at most 240 member slots");
    format!("{SUBNET}.{}", 10 + slot)
}

/// The host's address on the bridge (where the tests connect from).
pub fn host_address() -> String {
    format!("{SUBNET}.1")
}

/// The network namespace (and host interface) name of a slot.
pub fn netns(slot: u32) -> String {
    format!("{PREFIX}{slot}")
}

/// Creates the bridge unless it exists.
pub fn ensure_bridge() -> Result<(), String> {
    if ip(&["link", "show", BRIDGE]).is_ok() {
        return Ok(());
    }
    ip(&["link", "add", BRIDGE, "type", "bridge"])?;
    ip(&["addr", "add", &format!("{SUBNET}.1/24"), "dev", BRIDGE])?;
    ip(&["link", "set", BRIDGE, "up"])?;
    Ok(())
}

/// The host's address on the kwok pod network.
pub fn kwok_host_address() -> &'static str {
    KWOK_HOST
}

/// The bridge with the host's address on the kwok pod network too.
pub fn ensure_kwok_network() -> Result<(), String> {
    ensure_bridge()?;
    let cidr = format!("{KWOK_HOST}/{KWOK_PREFIX}");
    if !ip(&["-o", "addr", "show", "dev", BRIDGE])?.contains(&cidr) {
        ip(&["addr", "add", &cidr, "dev", BRIDGE])?;
    }
    Ok(())
}

/// An address of the host on the bridge (e.g. a Service's cluster IP the host serves).
pub fn add_host_address(address: std::net::IpAddr) -> Result<(), String> {
    let cidr = format!("{address}/32");
    if !ip(&["-o", "addr", "show", "dev", BRIDGE])?.contains(&format!(" {cidr} ")) {
        ip(&["addr", "add", &cidr, "dev", BRIDGE])?;
    }
    Ok(())
}

/// The slot's default route through the host on the kwok pod network (to the addresses the
/// host serves that are not on the bridge's networks).
pub fn route_via_kwok_host(slot: u32) -> Result<(), String> {
    default_route(slot, KWOK_HOST)
}

fn default_route(slot: u32, gateway: &str) -> Result<(), String> {
    ip(&[
        "-n",
        &netns(slot),
        "route",
        "add",
        "default",
        "via",
        gateway,
    ])
    .map(drop)
}

/// Creates the slot's namespace with `eth0` at its address, `lo` up, and its default route
/// through the host, as a pod has one (so does a kwok pod, [`route_via_kwok_host`]): what is
/// not on the pod network is sent to the host, not refused in the pod.
pub fn create(slot: u32) -> Result<(), String> {
    create_at(slot, &format!("{}/24", address(slot)))?;
    default_route(slot, &host_address())
}

/// Creates the slot's namespace with `eth0` at `cidr` (a pod's IP with its network's prefix
/// length) and `lo` up.
pub fn create_at(slot: u32, cidr: &str) -> Result<(), String> {
    let ns = netns(slot);
    remove(slot);
    ip(&["netns", "add", &ns])?;
    ip(&[
        "link", "add", &ns, "type", "veth", "peer", "name", "eth0", "netns", &ns,
    ])?;
    ip(&["link", "set", &ns, "master", BRIDGE, "up"])?;
    ip(&["-n", &ns, "addr", "add", cidr, "dev", "eth0"])?;
    ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
    ip(&["-n", &ns, "link", "set", "lo", "up"])?;
    Ok(())
}

/// Cuts the slot off the network (`false`) or connects it again (`true`).
pub fn set_link(slot: u32, up: bool) -> Result<(), String> {
    ip(&["link", "set", &netns(slot), if up { "up" } else { "down" }]).map(drop)
}

/// An open handle on the slot's namespace, for `setns`.
pub fn open(slot: u32) -> Result<File, String> {
    let path = format!("/run/netns/{}", netns(slot));
    File::open(&path).map_err(|e| format!("cannot open {path}: {e}"))
}

/// Kills every process left in the slot's namespace and removes it with its interface.
pub fn remove(slot: u32) {
    remove_named(&netns(slot));
}

fn remove_named(ns: &str) {
    if let Ok(pids) = ip(&["netns", "pids", ns]) {
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            // SAFETY: kill has no memory effects.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    let _ = ip(&["link", "del", ns]);
    let _ = ip(&["netns", "del", ns]);
}

/// Removes every namespace, interface and bridge of ours (what a crashed run left behind).
pub fn remove_all() {
    if let Ok(list) = ip(&["netns", "list"]) {
        for ns in list
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.starts_with(PREFIX))
        {
            remove_named(ns);
        }
    }
    if let Ok(links) = ip(&["-o", "link", "show"]) {
        for name in links
            .lines()
            .filter_map(|l| l.split(':').nth(1))
            .map(|n| n.trim().split('@').next().unwrap_or_default())
            .filter(|n| n.starts_with(PREFIX))
        {
            let _ = ip(&["link", "del", name]);
        }
    }
    let _ = ip(&["link", "del", BRIDGE]);
}
