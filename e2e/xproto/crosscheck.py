#!/usr/bin/env python3
"""Cross-checks innodb-operator's X protocol encoder/decoder against Oracle's generated protobuf
classes (PyPI mysqlx-connector-python, module mysqlx.protobuf).

usage: crosscheck.py DIR
  1. decodes every frame file DIR/rust/<name>.bin (written by the Rust test) with Oracle's classes
     and checks type numbers and field values;
  2. writes DIR/python/<name>.bin frames encoded with Oracle's classes for the Rust side to decode.
Exits non-zero listing every mismatch.
"""
import pathlib
import struct
import sys

from mysqlx.protobuf import mysqlx_connection_pb2 as conn
from mysqlx.protobuf import mysqlx_datatypes_pb2 as dt
from mysqlx.protobuf import mysqlx_notice_pb2 as notice
from mysqlx.protobuf import mysqlx_pb2 as mysqlx
from mysqlx.protobuf import mysqlx_session_pb2 as session
from mysqlx.protobuf import mysqlx_sql_pb2 as sql

CLIENT = mysqlx.ClientMessages.Type
SERVER = mysqlx.ServerMessages.Type
GR_NOTICES = [
    "group_replication/membership/quorum_loss",
    "group_replication/membership/view",
    "group_replication/status/role_change",
    "group_replication/status/state_change",
]

failures = []


def check(name, what, got, want):
    if got != want:
        failures.append(f"{name}: {what} is {got!r}, expected {want!r}")


def any_value(a):
    """Converts a Mysqlx.Datatypes.Any into a Python value."""
    if a.type == dt.Any.SCALAR:
        s = a.scalar
        return {
            dt.Scalar.V_SINT: lambda: s.v_signed_int,
            dt.Scalar.V_UINT: lambda: s.v_unsigned_int,
            dt.Scalar.V_NULL: lambda: None,
            dt.Scalar.V_OCTETS: lambda: s.v_octets.value,
            dt.Scalar.V_DOUBLE: lambda: s.v_double,
            dt.Scalar.V_FLOAT: lambda: s.v_float,
            dt.Scalar.V_BOOL: lambda: s.v_bool,
            dt.Scalar.V_STRING: lambda: s.v_string.value.decode(),
        }[s.type]()
    if a.type == dt.Any.ARRAY:
        return [any_value(v) for v in a.array.value]
    return {f.key: any_value(f.value) for f in a.obj.fld}


def caps(msg):
    return {c.name: any_value(c.value) for c in msg.capabilities}


def expect_enable_notices(name, m):
    check(name, "namespace", m.namespace, "mysqlx")
    check(name, "stmt", m.stmt, b"enable_notices")
    check(name, "args", [any_value(a) for a in m.args], [{"notice": GR_NOTICES}])


def expect_gr_notice(name, m):
    check(name, "notice type", m.type, notice.Frame.GROUP_REPLICATION_STATE_CHANGED)
    check(name, "scope", m.scope, notice.Frame.GLOBAL)
    gr = notice.GroupReplicationStateChanged()
    gr.ParseFromString(m.payload)
    check(name, "GR change type", gr.type, notice.GroupReplicationStateChanged.MEMBERSHIP_VIEW_CHANGE)
    check(name, "view_id", gr.view_id, "17000:3")


# name -> (type number, class, checks on the decoded message)
RUST_FRAMES = {
    "capabilities_get": (CLIENT.CON_CAPABILITIES_GET, conn.CapabilitiesGet, lambda n, m: None),
    "capabilities_set_tls": (
        CLIENT.CON_CAPABILITIES_SET,
        conn.CapabilitiesSet,
        lambda n, m: check(n, "capabilities", caps(m.capabilities), {"tls": True}),
    ),
    "close": (CLIENT.CON_CLOSE, conn.Close, lambda n, m: None),
    "authenticate_start": (
        CLIENT.SESS_AUTHENTICATE_START,
        session.AuthenticateStart,
        lambda n, m: (
            check(n, "mech_name", m.mech_name, "PLAIN"),
            check(n, "auth_data", m.auth_data, b"\0monitor\0pw"),
            check(n, "has initial_response", m.HasField("initial_response"), False),
        ),
    ),
    "authenticate_continue": (
        CLIENT.SESS_AUTHENTICATE_CONTINUE,
        session.AuthenticateContinue,
        lambda n, m: check(n, "auth_data", m.auth_data, b"\x01\x02"),
    ),
    "session_close": (CLIENT.SESS_CLOSE, session.Close, lambda n, m: None),
    "stmt_enable_notices": (CLIENT.SQL_STMT_EXECUTE, sql.StmtExecute, expect_enable_notices),
    "stmt_ping": (
        CLIENT.SQL_STMT_EXECUTE,
        sql.StmtExecute,
        lambda n, m: (
            check(n, "namespace", m.namespace, "mysqlx"),
            check(n, "stmt", m.stmt, b"ping"),
            check(n, "args", len(m.args), 0),
        ),
    ),
    "stmt_sql_default_namespace": (
        CLIENT.SQL_STMT_EXECUTE,
        sql.StmtExecute,
        lambda n, m: (
            check(n, "namespace", m.namespace, "sql"),
            check(n, "namespace sent", m.HasField("namespace"), False),
            check(n, "stmt", m.stmt, b"SELECT 1"),
        ),
    ),
    "server_ok": (SERVER.OK, mysqlx.Ok, lambda n, m: check(n, "msg", m.msg, "bye!")),
    "server_error": (
        SERVER.ERROR,
        mysqlx.Error,
        lambda n, m: (
            check(n, "severity", m.severity, mysqlx.Error.FATAL),
            check(n, "code", m.code, 1045),
            check(n, "msg", m.msg, "Access denied"),
            check(n, "sql_state", m.sql_state, "28000"),
        ),
    ),
    "server_capabilities": (
        SERVER.CONN_CAPABILITIES,
        conn.Capabilities,
        lambda n, m: check(
            n,
            "capabilities",
            caps(m),
            {
                "tls": True,
                "authentication.mechanisms": ["PLAIN", "SHA256_MEMORY"],
                "node_type": "mysql",
                "scalars": {
                    "sint": -5,
                    "uint": 18446744073709551615,
                    "null": None,
                    "octets": b"\x00\xff",
                    "double": 1.5,
                    "float": 0.25,
                },
            },
        ),
    ),
    "server_authenticate_continue": (
        SERVER.SESS_AUTHENTICATE_CONTINUE,
        session.AuthenticateContinue,
        lambda n, m: check(n, "auth_data", m.auth_data, b"salt"),
    ),
    "server_authenticate_ok": (SERVER.SESS_AUTHENTICATE_OK, session.AuthenticateOk, lambda n, m: None),
    "server_notice_gr": (SERVER.NOTICE, notice.Frame, expect_gr_notice),
    "server_stmt_execute_ok": (SERVER.SQL_STMT_EXECUTE_OK, sql.StmtExecuteOk, lambda n, m: None),
}


def read_frames(data):
    frames = []
    while data:
        if len(data) < 5:
            raise ValueError(f"{len(data)} trailing bytes are not a frame")
        (length,) = struct.unpack_from("<I", data)
        if length < 1 or len(data) < 4 + length:
            raise ValueError(f"frame length {length} does not fit in {len(data)} bytes")
        frames.append((data[4], data[5 : 4 + length]))
        data = data[4 + length :]
    return frames


def decode_rust_frames(directory):
    files = {p.stem: p for p in (directory / "rust").glob("*.bin")}
    check("rust frames", "names", sorted(files), sorted(RUST_FRAMES))
    for name, (msg_type, cls, expect) in RUST_FRAMES.items():
        if name not in files:
            continue
        frames = read_frames(files[name].read_bytes())
        check(name, "frame count", len(frames), 1)
        got_type, payload = frames[0]
        check(name, "message type", got_type, msg_type)
        msg = cls()
        msg.ParseFromString(payload)
        check(name, "required fields present", msg.IsInitialized(), True)
        expect(name, msg)
    return len(files)


def frame(msg_type, msg):
    payload = msg.SerializeToString()
    return struct.pack("<IB", len(payload) + 1, msg_type) + payload


def scalar_any(**kw):
    a = dt.Any(type=dt.Any.SCALAR)
    a.scalar.CopyFrom(dt.Scalar(**kw))
    return a


def string_any(text):
    return scalar_any(type=dt.Scalar.V_STRING, v_string=dt.Scalar.String(value=text.encode()))


def enable_notices_frame(names):
    """A StmtExecute frame for `enable_notices` with the given notice names."""
    enable = sql.StmtExecute(namespace="mysqlx", stmt=b"enable_notices")
    fld = enable.args.add(type=dt.Any.OBJECT).obj.fld.add(key="notice")
    fld.value.type = dt.Any.ARRAY
    for name in names:
        fld.value.array.value.add().CopyFrom(string_any(name))
    return frame(CLIENT.SQL_STMT_EXECUTE, enable)


def python_frames():
    capabilities = conn.Capabilities()
    cap = capabilities.capabilities.add(name="tls")
    cap.value.CopyFrom(scalar_any(type=dt.Scalar.V_BOOL, v_bool=False))
    cap = capabilities.capabilities.add(name="authentication.mechanisms")
    cap.value.type = dt.Any.ARRAY
    for mech in ("MYSQL41", "SHA256_MEMORY"):
        cap.value.array.value.add().CopyFrom(string_any(mech))
    cap = capabilities.capabilities.add(name="node_type")
    cap.value.CopyFrom(scalar_any(type=dt.Scalar.V_OCTETS, v_octets=dt.Scalar.Octets(value=b"mysql")))

    def gr(kind, view_id):
        payload = notice.GroupReplicationStateChanged(type=kind, view_id=view_id).SerializeToString()
        return frame(SERVER.NOTICE, notice.Frame(type=notice.Frame.GROUP_REPLICATION_STATE_CHANGED, scope=notice.Frame.GLOBAL, payload=payload))

    changes = notice.GroupReplicationStateChanged
    set_tls = conn.CapabilitiesSet()
    set_tls.capabilities.capabilities.add(name="tls").value.CopyFrom(scalar_any(type=dt.Scalar.V_BOOL, v_bool=True))
    return {
        "server_capabilities": frame(SERVER.CONN_CAPABILITIES, capabilities),
        "server_error": frame(SERVER.ERROR, mysqlx.Error(severity=mysqlx.Error.ERROR, code=5001, msg="Capability prepare failed for 'tls'", sql_state="HY000")),
        "server_ok": frame(SERVER.OK, mysqlx.Ok()),
        "server_authenticate_ok": frame(SERVER.SESS_AUTHENTICATE_OK, session.AuthenticateOk(auth_data=b"")),
        "server_stmt_execute_ok": frame(SERVER.SQL_STMT_EXECUTE_OK, sql.StmtExecuteOk()),
        # Several frames in one stream, as a server would send them; the warning must be skipped.
        "server_notices": b"".join(
            [
                frame(SERVER.NOTICE, notice.Frame(type=notice.Frame.WARNING, scope=notice.Frame.LOCAL, payload=notice.Warning(level=notice.Warning.NOTE, code=1, msg="w").SerializeToString())),
                gr(changes.MEMBERSHIP_QUORUM_LOSS, "1:1"),
                gr(changes.MEMBERSHIP_VIEW_CHANGE, "1:2"),
                gr(changes.MEMBER_ROLE_CHANGE, ""),
                gr(changes.MEMBER_STATE_CHANGE, "1:3"),
            ]
        ),
        "client_enable_notices": enable_notices_frame([GR_NOTICES[1]]),
        "client_capabilities_set": frame(CLIENT.CON_CAPABILITIES_SET, set_tls),
        "client_authenticate_start": frame(CLIENT.SESS_AUTHENTICATE_START, session.AuthenticateStart(mech_name="PLAIN", auth_data=b"\0u\0p")),
    }


def main():
    directory = pathlib.Path(sys.argv[1])
    decoded = decode_rust_frames(directory)
    out = directory / "python"
    out.mkdir(exist_ok=True)
    written = python_frames()
    for name, data in written.items():
        (out / f"{name}.bin").write_bytes(data)
    if failures:
        print("\n".join(failures), file=sys.stderr)
        sys.exit(1)
    print(f"crosscheck: {decoded} Rust frames decoded by mysqlx.protobuf, {len(written)} Python frame files written")


if __name__ == "__main__":
    main()
