//! Real servers for the data-path tests: MariaDB and MySQL 9.7 instances (fresh data directories
//! in temp dirs, loopback ports), killed when dropped (the MinIO server is `e2e/support/minio.rs`).
//! Every server has a certificate for [`TLS_NAME`] signed by this run's test CA, and the
//! clients' configuration verifies both, as a backup Job verifies a member with the cluster's CA.
//! A missing server binary is a test failure with the installer to run, never a skip.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use innodb_operator::certs::issue::{self, KeyedCert, LeafRequest, Usage};
use innodb_operator::datapath::{MysqlConfig, MysqlTls};
use mysql_async::prelude::Queryable;
use tempfile::TempDir;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

fn find(candidates: &[PathBuf], what: &str, installer: &str) -> PathBuf {
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| panic!("{what} not found at {candidates:?}: run {installer} first"))
}

async fn wait_port(port: u16, what: &str, child: &mut Child, log: Option<&Path>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            log.inspect(|l| print_log(what, l));
            panic!("{what} exited during start-up: {status}");
        }
        if Instant::now() > deadline {
            log.inspect(|l| print_log(what, l));
            panic!("{what} did not listen on {port} within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The name every test server's certificate carries (the clients connect to 127.0.0.1 and
/// verify this name, as a Job connects to a member's address and verifies its DNS name).
pub const TLS_NAME: &str = "server.datapath.test";

/// This run's test CA and the servers' certificate it signed.
pub struct TestPki {
    pub ca: KeyedCert,
    pub server: KeyedCert,
}

static PKI: std::sync::OnceLock<TestPki> = std::sync::OnceLock::new();

/// The test PKI, made on first use; it also picks the process's TLS backend for mysql_async's
/// sessions, as the binary does at start (two backends are linked).
pub fn pki() -> &'static TestPki {
    PKI.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let now = jiff::Timestamp::now();
        let ca = issue::new_ca("datapath test CA", now, &mut rand::rng()).expect("test CA");
        let request = LeafRequest {
            common_name: TLS_NAME.into(),
            dns_names: vec![TLS_NAME.into()],
            usage: Usage::Server,
        };
        let server = issue::issue(
            "datapath test CA",
            &ca.key_pem,
            &request,
            now,
            &mut rand::rng(),
        )
        .expect("server certificate");
        TestPki { ca, server }
    })
}

/// Writes the CA, the server's certificate and key into `dir` (owned by `uid` when given);
/// returns the server options naming them as `prefix` + file name (the path the server sees).
fn tls_files(dir: &Path, prefix: &str, uid: Option<u32>) -> Vec<String> {
    let pki = pki();
    let mut options = Vec::new();
    for (option, file, pem) in [
        ("ssl-ca", "ca.pem", &pki.ca.cert_pem),
        ("ssl-cert", "server-cert.pem", &pki.server.cert_pem),
        ("ssl-key", "server-key.pem", &pki.server.key_pem),
    ] {
        let path = dir.join(file);
        std::fs::write(&path, pem).expect("write a TLS file");
        if let Some(uid) = uid {
            std::os::unix::fs::chown(&path, Some(uid), Some(uid)).expect("chown a TLS file");
        }
        options.push(format!("--{option}={prefix}/{file}"));
    }
    options
}

/// Which server a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// The host's MariaDB (`e2e/lib/install-mariadb.sh`).
    Mariadb,
    /// MySQL 9.7 from the Debian unstable root filesystem (`e2e/lib/install-mysql97.sh`), run
    /// chrooted as uid/gid 999 like a member pod's mysqld.
    Mysql97,
}

/// Root's password on every test server (over TCP from 127.0.0.1).
const ROOT_PASSWORD: &str = "rootpw";

impl Flavor {
    /// How the backup holds commits still while its snapshots start (`Manifest::lock_method`):
    /// MariaDB's backup stages, MySQL's instance backup lock.
    pub fn lock_method(self) -> &'static str {
        match self {
            Flavor::Mariadb => "backup-stage",
            Flavor::Mysql97 => "lock-instance-for-backup",
        }
    }

    /// The statement that reads the server's executed GTID set.
    pub fn gtid_executed(self) -> &'static str {
        match self {
            Flavor::Mariadb => "SELECT @@GLOBAL.gtid_binlog_pos",
            Flavor::Mysql97 => "SELECT REPLACE(@@GLOBAL.gtid_executed, '\n', '')",
        }
    }
}

/// One server on a loopback port with binary log and GTIDs, killed when dropped; its error log
/// is printed when the test fails.
pub struct Server {
    pub flavor: Flavor,
    pub port: u16,
    child: Option<Child>,
    /// The error log, as the host sees it.
    log: PathBuf,
    _dir: TempDir,
}

impl Server {
    pub async fn start(flavor: Flavor, server_id: u32) -> Server {
        let port = free_port();
        let (dir, log, mut child) = match flavor {
            Flavor::Mariadb => spawn_mariadb(port, server_id),
            Flavor::Mysql97 => spawn_mysql97(port, server_id).await,
        };
        let what = format!("{flavor:?} on port {port}");
        wait_port(port, &what, &mut child, Some(&log)).await;
        let s = Server {
            flavor,
            port,
            child: Some(child),
            log,
            _dir: dir,
        };
        if flavor == Flavor::Mariadb {
            // root@127.0.0.1 exists with no password after install; give it one so the
            // password path is exercised (MySQL's template was initialised with it).
            let mut c = s.conn_as("root", "").await;
            c.query_drop(format!(
                "ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY '{ROOT_PASSWORD}'"
            ))
            .await
            .expect("set root password");
        }
        s
    }

    /// A connection as `user` (retrying while the server finishes starting).
    pub async fn conn_as(&self, user: &str, password: &str) -> mysql_async::Conn {
        let opts = MysqlConfig {
            password: password.into(),
            user: user.into(),
            ..self.config()
        }
        .opts();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match mysql_async::Conn::new(opts.clone()).await {
                Ok(c) => return c,
                Err(e) if Instant::now() > deadline => {
                    panic!("cannot connect to {:?} as {user}: {e}", self.flavor)
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    pub fn config(&self) -> MysqlConfig {
        MysqlConfig {
            host: "127.0.0.1".into(),
            port: self.port,
            user: "root".into(),
            password: ROOT_PASSWORD.into(),
            tls: MysqlTls::Verify {
                ca_pem: pki().ca.cert_pem.clone(),
                server_name: TLS_NAME.into(),
            },
        }
    }

    /// A root connection.
    pub async fn conn(&self) -> mysql_async::Conn {
        self.conn_as("root", ROOT_PASSWORD).await
    }

    /// The server's executed GTID set.
    pub async fn gtid_executed(&self, conn: &mut mysql_async::Conn) -> String {
        conn.query_first(self.flavor.gtid_executed())
            .await
            .expect("read the GTID set")
            .unwrap_or_default()
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            print_log(
                &format!("{:?} on port {}", self.flavor, self.port),
                &self.log,
            );
        }
    }
}

/// Prints the last lines of a server's error log (on a test failure).
fn print_log(what: &str, log: &Path) {
    let text = std::fs::read_to_string(log).unwrap_or_else(|e| format!("({e})"));
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(80)..];
    eprintln!(
        "---- error log of {what} ({}), last {} lines ----\n{}\n---- end ----",
        log.display(),
        tail.len(),
        tail.join("\n")
    );
}

/// A finished command's outcome, with its stderr when it failed.
fn succeeded(out: std::io::Result<std::process::Output>, what: &str) -> Result<(), String> {
    match out {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "{what} failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        )),
        Err(e) => Err(format!("{what} did not run: {e}")),
    }
}

/// Options both servers run with: loopback only, binary log, durable enough for tests.
fn common_options(port: u16, server_id: u32) -> Vec<String> {
    [
        format!("--port={port}"),
        format!("--server-id={server_id}"),
        "--bind-address=127.0.0.1".into(),
        "--innodb-buffer-pool-size=128M".into(),
        "--innodb-flush-log-at-trx-commit=2".into(),
        "--sync-binlog=0".into(),
        "--skip-name-resolve".into(),
        "--max-allowed-packet=64M".into(),
        "--event-scheduler=OFF".into(),
    ]
    .into()
}

fn spawn_mariadb(port: u16, server_id: u32) -> (TempDir, PathBuf, Child) {
    let mariadbd = find(
        &[
            PathBuf::from("/usr/sbin/mariadbd"),
            PathBuf::from("/usr/bin/mariadbd"),
        ],
        "mariadbd",
        "e2e/lib/install-mariadb.sh",
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let out = Command::new("mariadb-install-db")
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        // Its own tmpdir: bootstraps running side by side in a shared /tmp have failed with
        // "Could not remove temporary table" (seen once in CI-like runs).
        .arg(format!("--tmpdir={}", dir.path().display()))
        .args([
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--user=root",
        ])
        .output();
    succeeded(out, "mariadb-install-db").unwrap_or_else(|e| panic!("{e}"));
    let log = dir.path().join("error.log");
    let child = Command::new(mariadbd)
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--socket={}", dir.path().join("sock").display()))
        .arg(format!("--tmpdir={}", dir.path().display()))
        .arg(format!("--log-bin={}", data.join("binlog").display()))
        .arg(format!("--log-error={}", log.display()))
        .args(common_options(port, server_id))
        .args(tls_files(
            dir.path(),
            &dir.path().display().to_string(),
            None,
        ))
        .args(["--user=root", "--innodb-log-file-size=256M"])
        // The fixtures number rows with recursive CTEs (MariaDB stops them at 1000 by default).
        .arg("--max-recursive-iterations=1000000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start mariadbd");
    (dir, log, child)
}

/// The MySQL 9.7 root filesystem `e2e/lib/install-mysql97.sh` builds.
fn mysql97_rootfs() -> PathBuf {
    let rootfs = Path::new(&cache_dir()).join("mysql97/rootfs");
    find(
        &[rootfs.join("usr/sbin/mysqld")],
        "MySQL 9.7 (mysqld in its Debian unstable root filesystem)",
        "e2e/lib/install-mysql97.sh",
    );
    rootfs
}

/// Options of MySQL 9.7 for both `--initialize-insecure` and the server (so the template's
/// redo log already has the size the server wants).
const MYSQL97_OPTIONS: &[&str] = &[
    "--no-defaults",
    "--innodb-redo-log-capacity=256M",
    // Debian's default directory does not exist in the root filesystem: mysqld aborts.
    "--secure-file-priv=NULL",
];

/// What `--initialize-insecure` runs: the test's root account over TCP (caching_sha2, the
/// only password plugin 9.7 has).
fn mysql97_init() -> String {
    format!(
        "CREATE USER 'root'@'127.0.0.1' IDENTIFIED BY '{ROOT_PASSWORD}';\n\
         GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;\n"
    )
}

/// Runs mysqld of the root filesystem as uid/gid 999; paths are inside `rootfs`.
fn mysqld97(rootfs: &Path) -> Command {
    let mut c = Command::new("chroot");
    c.arg("--userspec=999:999")
        .arg(rootfs)
        .arg("/usr/sbin/mysqld")
        .args(MYSQL97_OPTIONS);
    c
}

/// A fresh directory under the root filesystem's /tmp, owned by the server's uid; returns it
/// and its path inside the root filesystem.
fn dir_in_rootfs(rootfs: &Path, prefix: &str) -> (TempDir, String) {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(rootfs.join("tmp"))
        .expect("temp dir in the MySQL root filesystem");
    std::os::unix::fs::chown(dir.path(), Some(999), Some(999)).expect("chown to 999");
    let inside = format!("/{}", dir.path().strip_prefix(rootfs).unwrap().display());
    (dir, inside)
}

/// An initialised 9.7 data directory every server of this run copies (initialising one takes
/// 5-8 s, a copy well under one), built once per test binary. A static is never dropped, so
/// each run removes the templates of runs that have ended.
static MYSQL97_TEMPLATE: std::sync::OnceLock<Result<(TempDir, PathBuf), String>> =
    std::sync::OnceLock::new();

fn mysql97_template(rootfs: &Path) -> &Path {
    let made = MYSQL97_TEMPLATE.get_or_init(|| {
        remove_old_templates(rootfs);
        let (dir, inside) = dir_in_rootfs(rootfs, &template_prefix(std::process::id()));
        std::fs::write(dir.path().join("init.sql"), mysql97_init()).expect("init file");
        let out = mysqld97(rootfs)
            .arg("--initialize-insecure")
            .arg(format!("--datadir={inside}/data"))
            .arg(format!("--init-file={inside}/init.sql"))
            .output();
        succeeded(out, "mysqld --initialize-insecure")?;
        let data = dir.path().join("data");
        // Every copy generates its own server UUID.
        std::fs::remove_file(data.join("auto.cnf")).expect("remove auto.cnf");
        Ok((dir, data))
    });
    match made {
        Ok((_, data)) => data,
        Err(e) => panic!("{e}"),
    }
}

fn template_prefix(pid: u32) -> String {
    format!("iop-datapath-template-{pid}-")
}

/// Removes the templates of test processes that are gone.
fn remove_old_templates(rootfs: &Path) {
    let Ok(entries) = std::fs::read_dir(rootfs.join("tmp")) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix("iop-datapath-template-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

async fn spawn_mysql97(port: u16, server_id: u32) -> (TempDir, PathBuf, Child) {
    let rootfs = mysql97_rootfs();
    let template = {
        let rootfs = rootfs.clone();
        tokio::task::spawn_blocking(move || mysql97_template(&rootfs).to_path_buf())
            .await
            .expect("initialise the template")
    };
    let (dir, inside) = dir_in_rootfs(&rootfs, "iop-datapath-");
    let out = Command::new("cp")
        .arg("-a")
        .arg(&template)
        .arg(dir.path().join("data"))
        .output();
    succeeded(out, "copying the 9.7 template").unwrap_or_else(|e| panic!("{e}"));
    let log = dir.path().join("error.log");
    let child = mysqld97(&rootfs)
        .arg(format!("--datadir={inside}/data"))
        .arg(format!("--socket={inside}/sock"))
        .arg(format!("--pid-file={inside}/mysqld.pid"))
        .arg(format!("--tmpdir={inside}"))
        .arg(format!("--log-error={inside}/error.log"))
        .args(common_options(port, server_id))
        .args(tls_files(dir.path(), &inside, Some(999)))
        .args([
            "--log-bin=binlog",
            "--gtid-mode=ON",
            "--enforce-gtid-consistency=ON",
            // The X plugin would take port 33060 in every server.
            "--mysqlx=OFF",
            // The fixtures number rows with recursive CTEs.
            "--cte-max-recursion-depth=1000000",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start mysqld (chroot)");
    (dir, log, child)
}

/// Where the installers put what they build.
fn cache_dir() -> String {
    std::env::var("IOP_CACHE").unwrap_or_else(|_| "/root/.cache/innodb-operator".into())
}
