//! The topology's SQL against a real server. No MySQL 8 can be had here, so this runs the parts
//! MariaDB shares with it against a MariaDB started in a temporary directory: the session setup
//! and capability probes, password quoting (an account created by the operator's builder, then
//! a login with that password), and that a server without Group Replication gives a clear error
//! that does not leak the password. Needs `mariadbd` and `mariadb-install-db` (Debian package
//! `mariadb-server`); fails when they are missing.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use innodb_operator::topology::mysql::{SessionTls, SqlOps};
use innodb_operator::topology::observe::Endpoint;
use innodb_operator::topology::ops::{MemberOps, OpsError};
use innodb_operator::topology::sql::{self, Accounts, Credentials};
use mysql_async::prelude::Queryable;

/// A MariaDB server in a temporary directory, stopped on drop.
struct Server {
    child: Child,
    port: u16,
    socket: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tool(name: &str) -> String {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/bin"] {
        let path = format!("{dir}/{name}");
        if Path::new(&path).exists() {
            return path;
        }
    }
    panic!(
        "{name} not found: install the Debian package mariadb-server (e2e/lib/install-mariadb.sh)"
    );
}

fn start() -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let status = Command::new(tool("mariadb-install-db"))
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .args([
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--user=root",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run mariadb-install-db");
    assert!(status.success(), "mariadb-install-db failed");
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let socket = dir.path().join("mysqld.sock").display().to_string();
    let child = Command::new(tool("mariadbd"))
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--socket={socket}"))
        .arg(format!("--port={port}"))
        .args([
            "--bind-address=127.0.0.1",
            "--user=root",
            "--skip-name-resolve",
        ])
        .arg(format!("--pid-file={}", dir.path().join("pid").display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start mariadbd");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !Path::new(&socket).exists() {
        assert!(
            Instant::now() < deadline,
            "mariadbd did not start within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Server {
        child,
        port,
        socket,
        _dir: dir,
    }
}

const TRICKY: &str = "p'a\\ss\"w;rd -- x";

#[tokio::test]
async fn topology_sql_on_a_real_server() {
    let server = start();
    // As root over the socket: create the recovery account with the operator's own builder.
    let root = mysql_async::OptsBuilder::default()
        .socket(Some(server.socket.clone()))
        .user(Some("root"));
    let mut conn = mysql_async::Conn::new(root).await.expect("root login");
    conn.query_drop(sql::SESSION_SETUP)
        .await
        .expect("session setup");
    let creds = |user: &str| Credentials {
        user: user.into(),
        password: TRICKY.into(),
    };
    let accounts = Accounts {
        recovery: creds("iop_admin"),
        router: creds("router"),
        backup: creds("backup"),
    };
    let caps = sql::Capabilities::from_probe("10.11.0", &[], &[]).expect("probe values");
    let statements = sql::account_statements(&caps, &accounts).expect("statements");
    conn.query_drop(statements[0].sql())
        .await
        .expect("CREATE USER with a tricky password");
    conn.query_drop("GRANT SELECT ON *.* TO 'iop_admin'@'%'")
        .await
        .expect("grant");
    conn.disconnect().await.expect("disconnect");

    // As that account over TCP, through the operator's SqlOps: the password quoting held, the
    // session setup and the three capability probes ran, and the missing GTID support is a clear
    // error without the password.
    let ops = SqlOps {
        admin: creds("iop_admin"),
        accounts,
        observe_timeout: Duration::from_secs(10),
        operation_timeout: Duration::from_secs(10),
        tls: SessionTls::Off,
    };
    let endpoint = Endpoint::named(0, "127.0.0.1", server.port);
    let err = ops
        .observe(&endpoint)
        .await
        .expect_err("MariaDB has no Group Replication");
    let text = err.to_string();
    assert!(
        matches!(&err, OpsError::Statement { what, .. } if what.contains("gtid_executed")),
        "login and probes must succeed and the GTID read must fail: {text}"
    );
    assert!(
        !text.contains(TRICKY) && !format!("{err:?}").contains("p'a"),
        "{text}"
    );

    // A wrong password is a member that refuses the operator's account (it needs the user),
    // with the server's words, not a panic and not a silent member.
    let wrong = SqlOps {
        admin: Credentials {
            user: "iop_admin".into(),
            password: "nope".into(),
        },
        ..ops.clone()
    };
    let err = wrong.observe(&endpoint).await.expect_err("wrong password");
    assert!(matches!(err, OpsError::Denied { .. }), "{err}");
    assert!(err.to_string().contains("ERROR 1045"), "{err}");
    assert!(!err.to_string().contains("nope"));
}
