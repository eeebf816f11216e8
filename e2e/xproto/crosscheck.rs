//! Cross-checks against an independent implementation, Oracle's X DevAPI client for Python (PyPI
//! `mysqlx-connector-python`):
//! - frames written by our encoder are decoded with its generated protobuf classes, and frames
//!   its classes encoded are decoded here (`crosscheck.py`);
//! - its client stack (TLS with host name verification, PLAIN, message reader) talks to our test
//!   server and receives Group Replication notices (`oracle_client.py`).
//!
//! Needs the venv from `e2e/lib/install-python-deps.sh`; under `CI=true` a missing venv fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::BytesMut;
use innodb_operator::xproto::frame::{DEFAULT_MAX_FRAME_LEN, Frame, FrameCodec, encode_frame};
use innodb_operator::xproto::messages::{
    Any, AnyType, AuthenticateContinue, AuthenticateOk, AuthenticateStart, Capabilities,
    CapabilitiesGet, CapabilitiesSet, Capability, ClientMessage, Close, Error,
    GroupReplicationChange, GroupReplicationStateChanged, NoticeFrame, NoticeScope, NoticeType,
    Object, ObjectField, Ok, Scalar, ScalarOctets, ScalarType, ServerMessage, SessionClose,
    Severity, StmtExecute, StmtExecuteOk, admin_command,
};
use innodb_operator::xproto::notice::{
    GROUP_REPLICATION_NOTICES, enable_group_replication_notices, group_replication_event,
};
use innodb_operator::xproto::{GrEvent, GrEventKind};
use prost::Message;
use tokio_util::codec::Decoder;

use crate::server::{Behavior, FakeXServer, PASSWORD, USER};

/// The venv's Python; `None` (after saying so) outside CI when it is missing, a panic under CI.
fn python() -> Option<PathBuf> {
    let path = match std::env::var_os("IOP_PYTHON") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(
            std::env::var("IOP_CACHE").unwrap_or_else(|_| "/root/.cache/innodb-operator".into()),
        )
        .join("venv/bin/python"),
    };
    if path.exists() {
        return Some(path);
    }
    let msg = format!(
        "{} is missing: run e2e/lib/install-python-deps.sh (mysqlx-connector-python venv)",
        path.display()
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{msg}");
    }
    eprintln!("NOT RUN: {msg}");
    None
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("e2e/xproto")
        .join(name)
}

fn rust_frames() -> Vec<(&'static str, Frame)> {
    let capability = |name: &str, value: Any| Capability {
        name: name.into(),
        value,
    };
    let scalars = Any {
        r#type: AnyType::Object as i32,
        scalar: None,
        array: None,
        obj: Some(Box::new(Object {
            fld: [
                (
                    "sint",
                    Scalar {
                        r#type: ScalarType::VSint as i32,
                        v_signed_int: Some(-5),
                        ..Default::default()
                    },
                ),
                (
                    "uint",
                    Scalar {
                        r#type: ScalarType::VUint as i32,
                        v_unsigned_int: Some(u64::MAX),
                        ..Default::default()
                    },
                ),
                (
                    "null",
                    Scalar {
                        r#type: ScalarType::VNull as i32,
                        ..Default::default()
                    },
                ),
                (
                    "octets",
                    Scalar {
                        r#type: ScalarType::VOctets as i32,
                        v_octets: Some(ScalarOctets {
                            value: vec![0, 0xFF],
                            content_type: None,
                        }),
                        ..Default::default()
                    },
                ),
                (
                    "double",
                    Scalar {
                        r#type: ScalarType::VDouble as i32,
                        v_double: Some(1.5),
                        ..Default::default()
                    },
                ),
                (
                    "float",
                    Scalar {
                        r#type: ScalarType::VFloat as i32,
                        v_float: Some(0.25),
                        ..Default::default()
                    },
                ),
            ]
            .into_iter()
            .map(|(key, scalar)| ObjectField {
                key: key.into(),
                value: Any::from_scalar(scalar),
            })
            .collect(),
        })),
    };
    let gr = GroupReplicationStateChanged {
        r#type: GroupReplicationChange::MembershipViewChange as u32,
        view_id: Some("17000:3".into()),
    };
    let client = [
        (
            "capabilities_get",
            ClientMessage::CapabilitiesGet(CapabilitiesGet {}),
        ),
        (
            "capabilities_set_tls",
            ClientMessage::CapabilitiesSet(CapabilitiesSet {
                capabilities: Capabilities {
                    capabilities: vec![capability("tls", Any::bool(true))],
                },
            }),
        ),
        ("close", ClientMessage::Close(Close {})),
        (
            "authenticate_start",
            ClientMessage::AuthenticateStart(AuthenticateStart {
                mech_name: "PLAIN".into(),
                auth_data: Some(b"\0monitor\0pw".to_vec()),
                initial_response: None,
            }),
        ),
        (
            "authenticate_continue",
            ClientMessage::AuthenticateContinue(AuthenticateContinue {
                auth_data: vec![1, 2],
            }),
        ),
        (
            "session_close",
            ClientMessage::SessionClose(SessionClose {}),
        ),
        (
            "stmt_enable_notices",
            ClientMessage::StmtExecute(enable_group_replication_notices()),
        ),
        (
            "stmt_ping",
            ClientMessage::StmtExecute(admin_command("ping", vec![])),
        ),
        (
            "stmt_sql_default_namespace",
            ClientMessage::StmtExecute(StmtExecute {
                stmt: b"SELECT 1".to_vec(),
                args: vec![],
                namespace: None,
                compact_metadata: None,
            }),
        ),
    ]
    .map(|(name, msg)| (name, msg.to_frame()));
    let server = [
        (
            "server_ok",
            ServerMessage::Ok(Ok {
                msg: Some("bye!".into()),
            }),
        ),
        (
            "server_error",
            ServerMessage::Error(Error {
                severity: Some(Severity::Fatal as i32),
                code: 1045,
                msg: "Access denied".into(),
                sql_state: "28000".into(),
            }),
        ),
        (
            "server_capabilities",
            ServerMessage::Capabilities(Capabilities {
                capabilities: vec![
                    capability("tls", Any::bool(true)),
                    capability(
                        "authentication.mechanisms",
                        Any::array(vec![Any::string("PLAIN"), Any::string("SHA256_MEMORY")]),
                    ),
                    capability("node_type", Any::string("mysql")),
                    capability("scalars", scalars),
                ],
            }),
        ),
        (
            "server_authenticate_continue",
            ServerMessage::AuthenticateContinue(AuthenticateContinue {
                auth_data: b"salt".to_vec(),
            }),
        ),
        (
            "server_authenticate_ok",
            ServerMessage::AuthenticateOk(AuthenticateOk { auth_data: None }),
        ),
        (
            "server_notice_gr",
            ServerMessage::Notice(NoticeFrame {
                r#type: NoticeType::GroupReplicationStateChanged as u32,
                scope: Some(NoticeScope::Global as i32),
                payload: Some(gr.encode_to_vec()),
            }),
        ),
        (
            "server_stmt_execute_ok",
            ServerMessage::StmtExecuteOk(StmtExecuteOk {}),
        ),
    ]
    .map(|(name, msg)| (name, msg.to_frame()));
    client.into_iter().chain(server).collect()
}

fn write_rust_frames(dir: &Path) -> usize {
    let out = dir.join("rust");
    std::fs::create_dir_all(&out).unwrap();
    let frames = rust_frames();
    for (name, frame) in &frames {
        let mut wire = BytesMut::new();
        encode_frame(
            frame.msg_type,
            &frame.payload,
            DEFAULT_MAX_FRAME_LEN,
            &mut wire,
        )
        .unwrap();
        std::fs::write(out.join(format!("{name}.bin")), &wire).unwrap();
    }
    frames.len()
}

fn read_frames(path: &Path) -> Vec<Frame> {
    let mut src = BytesMut::from(&std::fs::read(path).unwrap()[..]);
    let mut codec = FrameCodec::default();
    let mut frames = Vec::new();
    while let Some(frame) = codec.decode_eof(&mut src).unwrap() {
        frames.push(frame);
    }
    frames
}

fn one<T>(mut items: Vec<T>) -> T {
    assert_eq!(items.len(), 1);
    items.pop().unwrap()
}

fn server(dir: &Path, name: &str) -> ServerMessage {
    ServerMessage::decode(&one(read_frames(&dir.join(format!("{name}.bin"))))).unwrap()
}

fn client(dir: &Path, name: &str) -> ClientMessage {
    ClientMessage::decode(&one(read_frames(&dir.join(format!("{name}.bin"))))).unwrap()
}

/// Decodes and checks every frame file the Python side wrote; returns the file names.
fn check_python_frames(dir: &Path) -> Vec<String> {
    let dir = dir.join("python");
    let ServerMessage::Capabilities(caps) = server(&dir, "server_capabilities") else {
        panic!("capabilities")
    };
    assert_eq!(caps.get("tls").and_then(Any::as_bool), Some(false));
    let mechs: Vec<&str> = caps
        .get("authentication.mechanisms")
        .and_then(Any::as_array)
        .unwrap()
        .iter()
        .filter_map(Any::as_str)
        .collect();
    assert_eq!(mechs, ["MYSQL41", "SHA256_MEMORY"]);
    assert_eq!(caps.get("node_type").and_then(Any::as_str), Some("mysql"));

    let ServerMessage::Error(err) = server(&dir, "server_error") else {
        panic!("error")
    };
    assert_eq!(
        (err.is_fatal(), err.code, err.sql_state.as_str()),
        (false, 5001, "HY000")
    );
    assert_eq!(err.msg, "Capability prepare failed for 'tls'");
    assert_eq!(
        server(&dir, "server_ok"),
        ServerMessage::Ok(Ok { msg: None })
    );
    assert_eq!(
        server(&dir, "server_authenticate_ok"),
        ServerMessage::AuthenticateOk(AuthenticateOk {
            auth_data: Some(vec![])
        })
    );
    assert_eq!(
        server(&dir, "server_stmt_execute_ok"),
        ServerMessage::StmtExecuteOk(StmtExecuteOk {})
    );

    let events: Vec<Option<GrEvent>> = read_frames(&dir.join("server_notices.bin"))
        .iter()
        .map(|frame| match ServerMessage::decode(frame).unwrap() {
            ServerMessage::Notice(notice) => group_replication_event(&notice).unwrap(),
            other => panic!("not a notice: {other:?}"),
        })
        .collect();
    let ev = |kind, view: Option<&str>| {
        Some(GrEvent {
            kind,
            view_id: view.map(str::to_owned),
        })
    };
    assert_eq!(
        events,
        [
            None,
            ev(GrEventKind::QuorumLoss, Some("1:1")),
            ev(GrEventKind::ViewChange, Some("1:2")),
            ev(GrEventKind::RoleChange, None),
            ev(GrEventKind::StateChange, Some("1:3")),
        ]
    );

    let ClientMessage::StmtExecute(enable) = client(&dir, "client_enable_notices") else {
        panic!("stmt")
    };
    assert_eq!(
        (enable.namespace(), &enable.stmt[..]),
        ("mysqlx", &b"enable_notices"[..])
    );
    let names: Vec<&str> = enable.args[0]
        .get("notice")
        .and_then(Any::as_array)
        .unwrap()
        .iter()
        .filter_map(Any::as_str)
        .collect();
    assert_eq!(names, [GROUP_REPLICATION_NOTICES[1]]);
    let ClientMessage::CapabilitiesSet(set) = client(&dir, "client_capabilities_set") else {
        panic!("set")
    };
    assert_eq!(
        set.capabilities.get("tls").and_then(Any::as_bool),
        Some(true)
    );
    let ClientMessage::AuthenticateStart(start) = client(&dir, "client_authenticate_start") else {
        panic!("auth")
    };
    assert_eq!(
        (start.mech_name.as_str(), start.auth_data.as_deref()),
        ("PLAIN", Some(&b"\0u\0p"[..]))
    );
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    files
}

#[test]
fn frames_agree_with_oracle_mysqlx_protobuf_classes() {
    let Some(python) = python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let written = write_rust_frames(dir.path());
    let output = Command::new(&python)
        .arg("-B")
        .arg(script("crosscheck.py"))
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "crosscheck.py failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(&format!("{written} Rust frames decoded")),
        "{stdout}"
    );
    let checked = check_python_frames(dir.path());
    let expected = [
        "client_authenticate_start",
        "client_capabilities_set",
        "client_enable_notices",
        "server_authenticate_ok",
        "server_capabilities",
        "server_error",
        "server_notices",
        "server_ok",
        "server_stmt_execute_ok",
    ]
    .map(|name| format!("{name}.bin"));
    assert_eq!(checked, expected, "every Python frame file is checked");
    println!("{stdout}");
}

#[tokio::test]
async fn oracle_client_connects_authenticates_and_receives_notices_from_the_test_server() {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

    let Some(python) = python() else {
        return;
    };
    let server = FakeXServer::start(Behavior::Normal).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &server.ca_pem).unwrap();
    let mut child = tokio::process::Command::new(python)
        .arg("-B")
        .arg(script("oracle_client.py"))
        .arg("127.0.0.1")
        .arg(server.addr.port().to_string())
        .arg(&ca)
        .args([USER, PASSWORD, "4"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let within = std::time::Duration::from_secs(30);
    let mut next_line = async || {
        tokio::time::timeout(within, lines.next_line())
            .await
            .expect("oracle_client.py timed out")
            .unwrap()
    };
    let first = next_line().await;
    if first.as_deref() != Some("READY") {
        let mut err = String::new();
        stderr.read_to_string(&mut err).await.unwrap();
        panic!("oracle_client.py did not get ready: {first:?}\n{err}");
    }
    let sent = [(1, "7:1"), (2, "7:2"), (3, "7:2"), (4, "7:3")];
    for (kind, view) in sent {
        assert_eq!(server.push_notice(kind, view), 1);
    }
    for (kind, view) in sent {
        assert_eq!(next_line().await.unwrap(), format!("notice {kind} {view}"));
    }
    assert_eq!(next_line().await.as_deref(), Some("CLOSED"));
    let status = child.wait().await.unwrap();
    assert!(status.success(), "{status}");
    let stats = server.stats();
    assert_eq!(
        (
            stats.capability_gets,
            stats.tls_upgrades,
            stats.auth_ok,
            stats.notice_sessions,
            stats.closes
        ),
        (1, 1, 1, 1, 1),
        "{stats:?}"
    );
}
