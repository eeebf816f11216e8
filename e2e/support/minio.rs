//! A real MinIO S3 server for the tests (`e2e/lib/install-s3.sh` builds it): on a free port of
//! loopback or of an address pods reach (the real node's), HTTPS with a fresh private CA when
//! asked, killed when dropped. A missing binary is a test failure naming the installer.

use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use innodb_operator::datapath::s3::{CaBundle, S3Config};
use tempfile::TempDir;

pub const ACCESS_KEY: &str = "datapath-access";
pub const SECRET_KEY: &str = "datapath-secret-key";

fn free_port(addr: IpAddr) -> u16 {
    TcpListener::bind((addr, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port on {addr}: {e}"))
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

/// A MinIO server on a free port of `addr` (HTTPS when started with a [`TestCa`]).
pub struct Minio {
    pub addr: IpAddr,
    pub port: u16,
    child: Option<Child>,
    dir: TempDir,
    binary: PathBuf,
    tls: Option<TestCa>,
}

/// Where the installers put what they build.
fn cache_dir() -> String {
    std::env::var("IOP_CACHE").unwrap_or_else(|_| "/root/.cache/innodb-operator".into())
}

fn minio_binary() -> PathBuf {
    let mut candidates = vec![Path::new(&cache_dir()).join("bin/minio")];
    if let Ok(p) = std::env::var("MINIO_BIN") {
        candidates.insert(0, PathBuf::from(p));
    }
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!("minio not found at {candidates:?}: run e2e/lib/install-s3.sh first")
        })
}

impl Minio {
    pub async fn start() -> Minio {
        Minio::start_with(Ipv4Addr::LOCALHOST.into(), None).await
    }

    /// MinIO on `addr` (an address of this machine), plain HTTP.
    pub async fn start_on(addr: IpAddr) -> Minio {
        Minio::start_with(addr, None).await
    }

    /// MinIO serving HTTPS with a certificate of a fresh private CA.
    pub async fn start_tls() -> Minio {
        Minio::start_with(Ipv4Addr::LOCALHOST.into(), Some(TestCa::new())).await
    }

    async fn start_with(addr: IpAddr, tls: Option<TestCa>) -> Minio {
        let mut m = Minio {
            addr,
            port: free_port(addr),
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

    /// (Re)starts the server on the same port and data directory; returns once it answers a
    /// request (listening is not ready).
    pub async fn restart(&mut self) {
        let console = free_port(self.addr);
        let mut command = Command::new(&self.binary);
        if let Some(ca) = &self.tls {
            command.arg(format!("--certs-dir={}", ca.certs_dir.path().display()));
        }
        let mut child = command
            .arg("server")
            .arg(self.dir.path().join("data"))
            .arg(format!("--address={}:{}", self.addr, self.port))
            .arg(format!("--console-address={}:{console}", self.addr))
            .arg("--quiet")
            .env("MINIO_ROOT_USER", ACCESS_KEY)
            .env("MINIO_ROOT_PASSWORD", SECRET_KEY)
            .env("MINIO_BROWSER", "off")
            .env("MINIO_UPDATE", "off")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start minio");
        let client = self.client();
        let deadline = Instant::now() + Duration::from_secs(60);
        while client.list_buckets().send().await.is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("minio exited during start-up: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "minio did not answer on {}:{} within 60 s",
                self.addr,
                self.port
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.child = Some(child);
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}:{}", self.addr, self.port)
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
