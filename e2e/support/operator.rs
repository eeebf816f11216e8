//! The operator binary of this build, run as a local process against the test control plane:
//! one or more replicas that elect a leader through a Lease, with short lease timings.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const BINARY: &str = env!("CARGO_BIN_EXE_innodb-operator");

/// Lease timings of the tests (seconds): a standby takes over about `LEASE_DURATION` + 2 s
/// after the leader dies; a leader cut off stops `LEASE_RENEW_DEADLINE` after its last renewal.
pub const LEASE_DURATION: u64 = 8;
pub const LEASE_RENEW_PERIOD: u64 = 2;
pub const LEASE_RENEW_DEADLINE: u64 = 6;

/// What a replica is expected to be once started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    Leader,
    Standby,
}

impl Expect {
    fn readyz(self) -> &'static str {
        match self {
            Expect::Leader => "ready: leader",
            Expect::Standby => "ready: standby",
        }
    }
}

/// A running `innodb-operator run`; killed when dropped (also when the test panics).
pub struct Operator {
    child: Child,
    pub http: SocketAddr,
    pub log: PathBuf,
}

impl Operator {
    /// Starts a replica named `replica` with the credentials in `kubeconfig`, watching
    /// `namespace` only and competing for a Lease of that namespace's own (so tests running side
    /// by side do not share an operator), and waits until `/readyz` says it is what `expect` says.
    pub async fn start(
        kubeconfig: &Path,
        namespace: &str,
        log: PathBuf,
        replica: &str,
        expect: Expect,
    ) -> Operator {
        Self::start_with_env(kubeconfig, namespace, log, replica, expect, &[]).await
    }

    /// As [`Operator::start`], with `env` added to the process's environment.
    pub async fn start_with_env(
        kubeconfig: &Path,
        namespace: &str,
        log: PathBuf,
        replica: &str,
        expect: Expect,
        env: &[(&str, &str)],
    ) -> Operator {
        let http = free_port();
        let out = std::fs::File::create(&log).expect("create operator log");
        let child = Command::new(BINARY)
            .args([
                "run",
                "--namespace",
                namespace,
                "--http-addr",
                &http.to_string(),
                "--lease-name",
                &format!("innodb-operator-{namespace}"),
                "--lease-duration",
                &LEASE_DURATION.to_string(),
                "--lease-renew-period",
                &LEASE_RENEW_PERIOD.to_string(),
                "--lease-renew-deadline",
                &LEASE_RENEW_DEADLINE.to_string(),
            ])
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAME", replica)
            .env("RUST_LOG", "info,innodb_operator=debug")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log handle"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("start {BINARY}: {e}"));
        let mut op = Operator { child, http, log };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = op.child.try_wait() {
                panic!("operator exited with {status}:\n{}", op.log_text());
            }
            if op
                .readyz()
                .await
                .is_some_and(|r| r.ends_with(expect.readyz()))
            {
                return op;
            }
            assert!(
                Instant::now() < deadline,
                "operator {replica} not {expect:?} on {http} after 60s:\n{}",
                op.log_text()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The body of `/readyz` ("ready: leader", "ready: standby", ...), or None when nothing
    /// answers.
    pub async fn readyz(&self) -> Option<String> {
        let response = http_get(self.http, "/readyz").await?;
        Some(response.split("\r\n\r\n").nth(1)?.trim().to_string())
    }

    /// The value of an unlabelled metric, or None when it is not exposed.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = http_get(self.http, "/metrics").await?;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    /// Sends `signal` (as `kill -<signal>` names it: KILL, STOP, CONT, TERM).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {}", self.child.id());
    }

    /// Waits for the process to exit by itself, up to `timeout`.
    pub async fn exited(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for operator") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the operator the way Kubernetes does (SIGTERM) and returns whether it exited cleanly.
    pub async fn stop(mut self) -> bool {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for operator") {
                return status.success();
            }
            assert!(
                Instant::now() < deadline,
                "operator ignored SIGTERM for 20s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local addr")
}

/// The status code of a plain HTTP GET, or None when nothing answers.
pub async fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let body = http_get(addr, path).await?;
    body.split_whitespace().nth(1)?.parse().ok()
}

/// The whole response (status line, headers, body) of a plain HTTP/1.0 GET.
pub async fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    Some(response)
}
