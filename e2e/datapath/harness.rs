//! Real servers for the data-path tests: MariaDB instances (mariadb-install-db into temp dirs,
//! loopback ports) and a MinIO S3 server, all killed when dropped. A missing server binary is a
//! test failure with the installer to run, never a skip.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use innodb_operator::datapath::MysqlConfig;
use innodb_operator::datapath::s3::{CaBundle, S3Config};
use mysql_async::prelude::Queryable;
use tempfile::TempDir;

pub const ACCESS_KEY: &str = "datapath-access";
pub const SECRET_KEY: &str = "datapath-secret-key";

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

async fn wait_port(port: u16, what: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited during start-up: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on {port} within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One MariaDB server on a loopback port with binary log and GTIDs.
pub struct Mariadb {
    pub port: u16,
    child: Option<Child>,
    _dir: TempDir,
}

impl Mariadb {
    pub async fn start(server_id: u32) -> Mariadb {
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
            .output()
            .expect("mariadb-install-db: run e2e/lib/install-mariadb.sh first");
        assert!(
            out.status.success(),
            "mariadb-install-db failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("error.log")).expect("log file");
        let mut child = Command::new(mariadbd)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", dir.path().join("sock").display()))
            .arg(format!("--tmpdir={}", dir.path().display()))
            .arg(format!("--port={port}"))
            .arg(format!("--server-id={server_id}"))
            .arg(format!("--log-bin={}", data.join("binlog").display()))
            .args([
                "--bind-address=127.0.0.1",
                "--user=root",
                "--innodb-buffer-pool-size=128M",
                "--innodb-log-file-size=256M",
                "--innodb-flush-log-at-trx-commit=2",
                "--skip-name-resolve",
                "--max-allowed-packet=64M",
                "--event-scheduler=OFF",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start mariadbd");
        wait_port(port, "mariadbd", &mut child).await;
        let m = Mariadb {
            port,
            child: Some(child),
            _dir: dir,
        };
        // root@127.0.0.1 exists with no password after install; give it one so the password
        // path is exercised.
        let mut c = m.root_conn_with("").await;
        c.query_drop("ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY 'rootpw'")
            .await
            .expect("set root password");
        m
    }

    async fn root_conn_with(&self, password: &str) -> mysql_async::Conn {
        let opts = MysqlConfig {
            host: "127.0.0.1".into(),
            port: self.port,
            user: "root".into(),
            password: password.into(),
        }
        .opts();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match mysql_async::Conn::new(opts.clone()).await {
                Ok(c) => return c,
                Err(e) if Instant::now() > deadline => panic!("cannot connect to mariadbd: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    pub fn config(&self) -> MysqlConfig {
        MysqlConfig {
            host: "127.0.0.1".into(),
            port: self.port,
            user: "root".into(),
            password: "rootpw".into(),
        }
    }

    pub async fn conn(&self) -> mysql_async::Conn {
        self.root_conn_with("rootpw").await
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A private CA and the server certificate for 127.0.0.1 it signed, laid out as MinIO's
/// `--certs-dir` wants them (`public.crt`, `private.key`).
pub struct TestCa {
    pub ca_pem: String,
    pub certs_dir: TempDir,
}

impl TestCa {
    pub fn new() -> TestCa {
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "datapath test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate().unwrap())
            .expect("CA certificate");
        let server = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("server params");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = server.signed_by(&key, &ca).expect("server certificate");
        let certs_dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(certs_dir.path().join("public.crt"), cert.pem()).unwrap();
        std::fs::write(certs_dir.path().join("private.key"), key.serialize_pem()).unwrap();
        TestCa {
            ca_pem: ca.pem(),
            certs_dir,
        }
    }

    pub fn bundle(&self) -> CaBundle {
        CaBundle {
            origin: "the test CA".into(),
            pem: self.ca_pem.clone().into_bytes(),
        }
    }
}

/// A MinIO server on a loopback port (HTTPS when started with a [`TestCa`]).
pub struct Minio {
    pub port: u16,
    child: Option<Child>,
    dir: TempDir,
    binary: PathBuf,
    tls: Option<TestCa>,
}

fn minio_binary() -> PathBuf {
    let cache =
        std::env::var("IOP_CACHE").unwrap_or_else(|_| "/root/.cache/innodb-operator".into());
    let mut candidates = vec![Path::new(&cache).join("bin/minio")];
    if let Ok(p) = std::env::var("MINIO_BIN") {
        candidates.insert(0, PathBuf::from(p));
    }
    find(&candidates, "minio", "e2e/lib/install-s3.sh")
}

impl Minio {
    pub async fn start() -> Minio {
        Minio::start_with(None).await
    }

    /// MinIO serving HTTPS with a certificate of a fresh private CA.
    pub async fn start_tls() -> Minio {
        Minio::start_with(Some(TestCa::new())).await
    }

    async fn start_with(tls: Option<TestCa>) -> Minio {
        let mut m = Minio {
            port: free_port(),
            child: None,
            dir: tempfile::tempdir().expect("temp dir"),
            binary: minio_binary(),
            tls,
        };
        m.restart().await;
        m
    }

    pub fn ca(&self) -> Option<&TestCa> {
        self.tls.as_ref()
    }

    /// (Re)starts the server on the same port and data directory.
    pub async fn restart(&mut self) {
        let console = free_port();
        let mut command = Command::new(&self.binary);
        if let Some(ca) = &self.tls {
            command.arg(format!("--certs-dir={}", ca.certs_dir.path().display()));
        }
        let mut child = command
            .arg("server")
            .arg(self.dir.path().join("data"))
            .arg(format!("--address=127.0.0.1:{}", self.port))
            .arg(format!("--console-address=127.0.0.1:{console}"))
            .arg("--quiet")
            .env("MINIO_ROOT_USER", ACCESS_KEY)
            .env("MINIO_ROOT_PASSWORD", SECRET_KEY)
            .env("MINIO_BROWSER", "off")
            .env("MINIO_UPDATE", "off")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start minio");
        wait_port(self.port, "minio", &mut child).await;
        self.child = Some(child);
        // Listening is not ready: wait until a real request answers.
        let client = self.client();
        let deadline = Instant::now() + Duration::from_secs(60);
        while client.list_buckets().send().await.is_err() {
            assert!(
                Instant::now() < deadline,
                "minio did not answer within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// A plain SDK client (trusting the server's CA when it serves HTTPS).
    pub fn client(&self) -> aws_sdk_s3::Client {
        let mut conf = client_config(&self.endpoint());
        if let Some(ca) = &self.tls {
            conf = conf.http_client(ca.bundle().http_client().expect("test CA"));
        }
        aws_sdk_s3::Client::from_conf(conf.build())
    }

    pub async fn create_bucket(&self, name: &str) {
        self.client()
            .create_bucket()
            .bucket(name)
            .send()
            .await
            .expect("create bucket");
    }

    /// The S3 settings the backup uses against this server (or `endpoint` in front of it).
    pub fn config(&self, bucket: &str) -> S3Config {
        S3Config {
            endpoint: Some(self.endpoint()),
            region: "us-east-1".into(),
            bucket: bucket.into(),
            path_style: true,
            access_key_id: ACCESS_KEY.into(),
            secret_access_key: SECRET_KEY.into(),
            max_attempts: 3,
            ca: self.tls.as_ref().map(TestCa::bundle),
        }
    }
}

impl Drop for Minio {
    fn drop(&mut self) {
        self.stop();
    }
}

fn client_config(endpoint: &str) -> aws_sdk_s3::config::Builder {
    aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"))
        .endpoint_url(endpoint)
        .force_path_style(true)
}
