//! Members of one cluster run as their pod spec says, each in its own network namespace on the
//! bridge, and the faults and restarts a kubelet or the network would bring.
//!
//! Per member, under the cluster's state directory: `state/pod/<volume>` (fresh per pod start),
//! `state/claims/<claim>` (kept), `state/hosts`, `state/resolv.conf`, and
//! `logs/<container>.log`.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::net;
use super::pod::{self, PodMeta, PodSource, VolumeDirs};
use super::spawn::{self, Sandbox};

static NEXT_SLOT: AtomicU32 = AtomicU32::new(0);
/// Live clusters of this process; the last one to go removes the bridge.
static LIVE: Mutex<u32> = Mutex::new(0);

/// How long an init container may run.
const INIT_TIMEOUT: Duration = Duration::from_secs(180);
/// `terminationGracePeriodSeconds` when the spec has none.
const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// One member: its pod, its network slot, its main container.
pub struct Member {
    pub ordinal: u32,
    pub name: String,
    pub fqdn: String,
    pub ip: String,
    slot: u32,
    state: PathBuf,
    logs: PathBuf,
    netns: File,
    /// What this pod runs (every member of a StatefulSet alike; a kubelet runs each pod's own).
    source: PodSource,
    main: Option<Child>,
}

impl Member {
    /// A TCP connection to `to` opened from this member's network namespace, as a process of
    /// its pod opens it (a member's peers are allowed where the host is not, e.g. by Group
    /// Replication's IP allowlist).
    pub fn connect_from(&self, to: std::net::SocketAddr) -> Result<std::net::TcpStream, String> {
        let netns = net::open(self.slot)?;
        // A thread of its own enters the namespace; sockets it creates stay in it.
        std::thread::spawn(move || {
            use std::os::fd::AsRawFd;
            // SAFETY: setns on an open namespace file, in a thread that does nothing else.
            if unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(format!("setns: {}", std::io::Error::last_os_error()));
            }
            std::net::TcpStream::connect_timeout(&to, Duration::from_secs(5))
                .map_err(|e| format!("connect to {to}: {e}"))
        })
        .join()
        .map_err(|_| "the connecting thread panicked".to_string())?
    }

    fn dirs(&self) -> VolumeDirs {
        VolumeDirs {
            pod: self.state.join("pod"),
            claims: self.state.join("claims"),
        }
    }

    /// The member's kept volumes (its data directory among them).
    pub fn claims_dir(&self) -> PathBuf {
        self.dirs().claims
    }

    /// Every container log of this member (the mysqld error log is the main container's).
    pub fn logs(&self) -> String {
        let mut out = String::new();
        let Ok(entries) = fs::read_dir(&self.logs) else {
            return out;
        };
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            let text = fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(80)..];
            out.push_str(&format!("----- {} ({}) -----\n", self.name, path.display()));
            for l in tail {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    fn main_pid(&self) -> Option<i32> {
        self.main.as_ref().map(|c| c.id() as i32)
    }
}

/// How a pod goes away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removal {
    /// Deleted: its main container stopped as the kubelet does ([`Cluster::stop`]); its
    /// connections are closed (FIN) while its address still exists.
    Deleted,
    /// Its node lost: cut off the network first, then killed (SIGKILL): nothing of its end (no
    /// FIN, no RST) reaches its peers, whose connections to it stay open.
    NodeLost,
}

/// A pod removed by [`Cluster::remove_pod`]: how its main container ended, and what creating
/// it again takes ([`Cluster::add_member`]).
pub struct GonePod {
    pub ordinal: u32,
    pub name: String,
    pub fqdn: String,
    pub ip: String,
    pub source: PodSource,
    pub status: Option<ExitStatus>,
}

/// The members of one cluster.
pub struct Cluster {
    rootfs: PathBuf,
    dir: PathBuf,
    pub namespace: String,
    members: Vec<Member>,
}

fn once_per_process() -> Result<(), String> {
    static DONE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        hold_the_machine_lock()?;
        net::remove_all();
        let _ = fs::remove_dir_all(base_dir());
        Ok(())
    })
    .clone()
}

/// One test process at a time owns the pod network and the state directory (a second would
/// remove the first one's namespaces as a crashed run's leftovers): an exclusive `flock` held
/// until this process exits. A second process waits here.
fn hold_the_machine_lock() -> Result<(), String> {
    use std::os::fd::IntoRawFd;
    let path = "/run/lock/iop-realmysql.lock";
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| format!("cannot open {path}: {e}"))?;
    let fd = file.into_raw_fd();
    // SAFETY: fd is an open descriptor this process owns; it is never closed, so the lock lives
    // as long as the process.
    if unsafe { libc::flock(fd, libc::LOCK_EX) } != 0 {
        return Err(format!(
            "cannot lock {path}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

fn base_dir() -> PathBuf {
    std::env::temp_dir().join("iop-realmysql")
}

impl Cluster {
    /// Network and state for `replicas` members named `<name>-<ordinal>` with the stable DNS
    /// names `fqdn(ordinal)`; nothing runs yet.
    pub fn new(
        rootfs: &Path,
        name: &str,
        namespace: &str,
        fqdn: impl Fn(u32) -> String,
        source: PodSource,
        replicas: u32,
    ) -> Result<Cluster, String> {
        let mut cluster = Cluster::empty(rootfs, name, namespace)?;
        for ordinal in 0..replicas {
            cluster.add_member(
                ordinal,
                format!("{name}-{ordinal}"),
                fqdn(ordinal),
                source.clone(),
            )?;
        }
        cluster.set_hosts(&cluster.member_hosts())?;
        Ok(cluster)
    }

    /// A member's pod at the next free address of the pod network: its network namespace and
    /// state; nothing runs yet. A pod created again after [`Cluster::remove_pod`] gets a new
    /// address (as a new pod gets a new pod IP) and keeps its claims; its name resolves to the
    /// new address once the hosts are set again ([`Cluster::member_hosts`]).
    pub fn add_member(
        &mut self,
        ordinal: u32,
        name: String,
        fqdn: String,
        source: PodSource,
    ) -> Result<(), String> {
        let slot = NEXT_SLOT.fetch_add(1, Ordering::SeqCst);
        net::create(slot)?;
        self.push_member(ordinal, name, fqdn, net::address(slot), slot, source)
    }

    /// What the cluster DNS says of these members, as `/etc/hosts` ([`Cluster::set_hosts`]):
    /// every member's stable name and pod name at its address (a removed pod's name no longer
    /// resolves).
    pub fn member_hosts(&self) -> String {
        let mut hosts = base_hosts();
        for m in &self.members {
            hosts.push_str(&format!("{}\t{} {}\n", m.ip, m.fqdn, m.name));
        }
        hosts
    }

    /// Network and state for the members of cluster `name`, none yet (see [`Cluster::add_pod`]).
    pub fn empty(rootfs: &Path, name: &str, namespace: &str) -> Result<Cluster, String> {
        once_per_process()?;
        {
            // The last cluster of a previous test may have removed the bridge.
            let mut live = LIVE.lock().unwrap();
            net::ensure_bridge()?;
            *live += 1;
        }
        let dir = base_dir().join(name);
        let _ = fs::remove_dir_all(&dir);
        let cluster = Cluster {
            rootfs: rootfs.to_path_buf(),
            dir,
            namespace: namespace.to_string(),
            members: Vec::new(),
        };
        Ok(cluster)
    }

    fn push_member(
        &mut self,
        ordinal: u32,
        name: String,
        fqdn: String,
        ip: String,
        slot: u32,
        source: PodSource,
    ) -> Result<(), String> {
        assert!(
            self.members.iter().all(|m| m.ordinal != ordinal),
            "{name}: ordinal {ordinal} is taken"
        );
        let member_dir = self.dir.join(&name);
        let state = member_dir.join("state");
        let logs = member_dir.join("logs");
        for d in [&state, &logs] {
            fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        let hosts = state.join("hosts");
        if !hosts.exists() {
            fs::write(&hosts, base_hosts()).map_err(|e| format!("{}: {e}", hosts.display()))?;
        }
        let resolv = state.join("resolv.conf");
        fs::write(&resolv, POD_RESOLV_CONF).map_err(|e| format!("{}: {e}", resolv.display()))?;
        self.members.push(Member {
            ordinal,
            fqdn,
            ip,
            netns: net::open(slot)?,
            name,
            slot,
            state,
            logs,
            source,
            main: None,
        });
        Ok(())
    }

    /// A pod the harness found in the API, at the IP the control plane gave it (on the kwok pod
    /// network): its network namespace and state; nothing runs yet. A pod of the same name had
    /// before keeps its claims (as a StatefulSet's PersistentVolumeClaims are kept).
    pub fn add_pod(
        &mut self,
        ordinal: u32,
        name: &str,
        ip: &str,
        source: PodSource,
    ) -> Result<(), String> {
        net::ensure_kwok_network()?;
        let slot = NEXT_SLOT.fetch_add(1, Ordering::SeqCst);
        net::create_at(slot, &format!("{ip}/{}", net::KWOK_PREFIX))?;
        net::route_via_kwok_host(slot)?;
        self.push_member(
            ordinal,
            name.to_string(),
            name.to_string(),
            ip.to_string(),
            slot,
            source,
        )
    }

    /// The pod is gone (`how`): its network namespace removed, and its address with it (a
    /// peer's packets to it are answered by nobody, as a deleted pod's IP); its files (claims,
    /// logs) stay.
    pub fn remove_pod(&mut self, ordinal: u32, how: Removal) -> Result<GonePod, String> {
        let status = match how {
            Removal::Deleted => self.stop(ordinal),
            Removal::NodeLost => {
                self.link_down(ordinal)?;
                self.kill(ordinal, libc::SIGKILL);
                self.wait_exit(ordinal, Duration::from_secs(10))
            }
        };
        let Member {
            ordinal,
            name,
            fqdn,
            ip,
            slot,
            source,
            ..
        } = self.members.remove(self.index(ordinal));
        net::remove(slot);
        Ok(GonePod {
            ordinal,
            name,
            fqdn,
            ip,
            source,
            status,
        })
    }

    /// The log of `container` of pod `pod`, kept after the pod is gone (as its claims are).
    pub fn kept_log(&self, pod: &str, container: &str) -> PathBuf {
        spawn::log_path(&self.dir.join(pod).join("logs"), container)
    }

    /// Rewrites every member's `/etc/hosts` in place (the containers see the file they bound).
    pub fn set_hosts(&self, text: &str) -> Result<(), String> {
        for m in &self.members {
            let path = m.state.join("hosts");
            fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(())
    }

    /// Whether member `ordinal` exists and its main container runs (as far as this harness
    /// knows: it may have exited since, see [`Cluster::wait_exit`]).
    pub fn is_running(&self, ordinal: u32) -> bool {
        self.members
            .iter()
            .any(|m| m.ordinal == ordinal && m.main.is_some())
    }

    fn index(&self, ordinal: u32) -> usize {
        self.members
            .iter()
            .position(|m| m.ordinal == ordinal)
            .unwrap_or_else(|| panic!("no member with ordinal {ordinal}"))
    }

    pub fn member(&self, ordinal: u32) -> &Member {
        &self.members[self.index(ordinal)]
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    fn meta(&self, m: &Member) -> PodMeta {
        PodMeta {
            name: m.name.clone(),
            namespace: self.namespace.clone(),
            ip: m.ip.clone(),
        }
    }

    fn run(
        &self,
        m: &Member,
        container: &k8s_openapi::api::core::v1::Container,
    ) -> Result<Child, String> {
        let plan = pod::plan(&m.source, &self.meta(m), container, &m.dirs())?;
        let log_path = spawn::log_path(&m.logs, &plan.name);
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("{}: {e}", log_path.display()))?;
        let _ = writeln!(log, "=== {}: container {} starts", m.name, plan.name);
        let sandbox = Sandbox {
            rootfs: &self.rootfs,
            state: &m.state,
            netns: &m.netns,
            hostname: &m.name,
            hosts_file: &m.state.join("hosts"),
            resolv_file: &m.state.join("resolv.conf"),
        };
        spawn::spawn(&plan, &sandbox, &log)
            .map_err(|e| format!("{}: container {}: {e}", m.name, plan.name))
    }

    /// Starts member `ordinal`'s pod: fresh volumes, the init containers in order (each to
    /// completion), then the main container.
    pub fn start(&mut self, ordinal: u32) -> Result<(), String> {
        let m = self.member(ordinal);
        assert!(m.main.is_none(), "{} is already running", m.name);
        self.run_inits(ordinal)?;
        self.start_main(ordinal)
    }

    fn start_main(&mut self, ordinal: u32) -> Result<(), String> {
        let i = self.index(ordinal);
        let [main] = self.members[i].source.spec.containers.as_slice() else {
            return Err("the harness runs pods of exactly one container".into());
        };
        let child = self.run(&self.members[i], main)?;
        self.members[i].main = Some(child);
        Ok(())
    }

    /// Starts every member's pod at once.
    pub fn start_all(&mut self) -> Result<(), String> {
        let ordinals: Vec<u32> = self.members.iter().map(|m| m.ordinal).collect();
        self.start_some(&ordinals)
    }

    /// Starts the pods of `ordinals` at once.
    pub fn start_some(&mut self, ordinals: &[u32]) -> Result<(), String> {
        // Init containers run in parallel threads (mysqld --initialize takes seconds each).
        let ordinals = ordinals.to_vec();
        let this: &Cluster = self;
        let results: Vec<Result<(), String>> = std::thread::scope(|s| {
            let handles: Vec<_> = ordinals
                .iter()
                .map(|&o| s.spawn(move || this.run_inits(o)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("init thread"))
                .collect()
        });
        results.into_iter().collect::<Result<Vec<()>, String>>()?;
        for o in ordinals {
            self.start_main(o)?;
        }
        Ok(())
    }

    fn run_inits(&self, ordinal: u32) -> Result<(), String> {
        let m = self.member(ordinal);
        let dirs = m.dirs();
        let _ = fs::remove_dir_all(&dirs.pod);
        pod::prepare_volumes(&m.source, &dirs)?;
        for init in m.source.spec.init_containers.iter().flatten() {
            let mut child = self.run(m, init)?;
            match wait_timeout(&mut child, INIT_TIMEOUT) {
                Some(s) if s.success() => {}
                other => {
                    if other.is_none() {
                        killpg(child.id() as i32, libc::SIGKILL);
                        let _ = child.wait();
                    }
                    return Err(format!(
                        "{}: init container {} ended with {other:?}\n{}",
                        m.name,
                        init.name,
                        m.logs()
                    ));
                }
            }
        }
        Ok(())
    }

    /// Sends `signal` to every process of the member's main container (SIGKILL, SIGSTOP,
    /// SIGCONT, SIGTERM...).
    pub fn kill(&self, ordinal: u32, signal: i32) {
        if let Some(pid) = self.member(ordinal).main_pid() {
            killpg(pid, signal);
        }
    }

    /// Waits up to `limit` for the main container to exit.
    pub fn wait_exit(&mut self, ordinal: u32, limit: Duration) -> Option<ExitStatus> {
        let i = self.index(ordinal);
        let m = &mut self.members[i];
        let name = m.source.spec.containers.first()?.name.clone();
        let status = wait_timeout(m.main.as_mut()?, limit)?;
        m.main = None;
        // What `kubectl describe pod` would show as the last state.
        if let Ok(mut log) = OpenOptions::new()
            .append(true)
            .open(spawn::log_path(&m.logs, &name))
        {
            let _ = writeln!(log, "=== {}: container {name} ended: {status}", m.name);
        }
        Some(status)
    }

    /// Stops the main container as the kubelet does: SIGTERM, then SIGKILL after the grace
    /// period.
    pub fn stop(&mut self, ordinal: u32) -> Option<ExitStatus> {
        let grace = self
            .member(ordinal)
            .source
            .spec
            .termination_grace_period_seconds
            .map_or(DEFAULT_GRACE, |s| Duration::from_secs(s as u64));
        self.kill(ordinal, libc::SIGTERM);
        if let Some(status) = self.wait_exit(ordinal, grace) {
            return Some(status);
        }
        self.kill(ordinal, libc::SIGKILL);
        self.wait_exit(ordinal, Duration::from_secs(10))
    }

    /// The kubelet restarting the main container (after it exited, or killing it first).
    pub fn restart_container(&mut self, ordinal: u32) -> Result<(), String> {
        if self.member(ordinal).main.is_some() {
            self.stop(ordinal);
        }
        self.start_main(ordinal)
    }

    /// Deletes the pod and creates it again: init containers again, emptyDirs fresh, the
    /// claims kept.
    pub fn recreate_pod(&mut self, ordinal: u32) -> Result<(), String> {
        if self.member(ordinal).main.is_some() {
            self.stop(ordinal);
        }
        self.start(ordinal)
    }

    /// Runs `command` in member `ordinal`'s pod beside its containers, as `kubectl exec` does:
    /// a process of the main container's image, mounts and user, named `name` (its output in
    /// that name's log, returned with the child).
    pub fn exec(
        &self,
        ordinal: u32,
        name: &str,
        command: Vec<String>,
    ) -> Result<(Child, PathBuf), String> {
        let m = self.member(ordinal);
        let [main] = m.source.spec.containers.as_slice() else {
            return Err("the harness runs pods of exactly one container".into());
        };
        let mut container = main.clone();
        container.name = name.to_string();
        container.command = Some(command);
        container.args = None;
        let child = self.run(m, &container)?;
        Ok((child, spawn::log_path(&m.logs, name)))
    }

    /// Cuts the member off the network.
    pub fn link_down(&self, ordinal: u32) -> Result<(), String> {
        net::set_link(self.member(ordinal).slot, false)
    }

    pub fn link_up(&self, ordinal: u32) -> Result<(), String> {
        net::set_link(self.member(ordinal).slot, true)
    }

    /// Where volume `name` of member `ordinal` is on the host (e.g. to reach a socket).
    pub fn volume_path(&self, ordinal: u32, name: &str) -> PathBuf {
        let m = self.member(ordinal);
        m.dirs().path(&m.source, name)
    }

    /// Every member's logs.
    pub fn logs(&self) -> String {
        self.members.iter().map(Member::logs).collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let failed = std::thread::panicking();
        if failed {
            eprintln!("{}", self.logs());
        }
        for m in &mut self.members {
            if let Some(mut child) = m.main.take() {
                killpg(child.id() as i32, libc::SIGKILL);
                let _ = child.wait();
            }
            net::remove(m.slot);
        }
        // IOP_REALMYSQL_KEEP=1 keeps a passing run's files (logs, data) too.
        if failed || std::env::var_os("IOP_REALMYSQL_KEEP").is_some() {
            eprintln!("members' files kept in {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
        let mut live = LIVE.lock().unwrap();
        *live -= 1;
        if *live == 0 {
            net::remove_all();
        }
    }
}

/// Every pod's `/etc/resolv.conf`, as a kubelet writes one. This harness's cluster DNS is the
/// pod's `/etc/hosts` ([`Cluster::set_hosts`]), so the nameserver is the pod's own loopback,
/// where nothing listens: a name the hosts file does not hold (a removed pod's) fails at once
/// ("temporary failure"), as the cluster DNS answers at once that it does not know it. The root
/// filesystem's own file names the host's resolver, which the pod network does not reach: such
/// a lookup failed after 20 s, and XCom tries a name up to 10 times while it fails that way,
/// its only thread blocked meanwhile.
const POD_RESOLV_CONF: &str = "nameserver 127.0.0.1\n";

/// What every member resolves besides the pods: localhost, and the host's names (which spare
/// mysqld a failing reverse lookup on every test or operator connection).
pub fn base_hosts() -> String {
    format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n{}\tiop-test-host\n{}\tiop-test-host-kwok\n",
        net::host_address(),
        net::kwok_host_address()
    )
}

fn killpg(pid: i32, signal: i32) {
    // SAFETY: kill has no memory effects; a negative pid names the process group.
    unsafe { libc::kill(-pid, signal) };
}

fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
