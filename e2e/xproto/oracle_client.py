#!/usr/bin/env python3
"""Drives Oracle's X protocol client stack (mysqlx-connector-python) against the Rust test X
server: capabilities, TLS with CA and host name verification, PLAIN authentication (all done by
mysqlx.connection.Connection.connect), then enable_notices and N Group Replication notices read
with Oracle's message reader, then Connection.Close.

usage: oracle_client.py HOST PORT CA_FILE USER PASSWORD NOTICES
Prints "READY" once notices are enabled, then one line "notice TYPE VIEW_ID" per GR notice.
"""
import sys

from mysqlx.connection import Connection
from mysqlx.constants import Compression, SSLMode
from mysqlx.protobuf import mysqlx_notice_pb2 as notice

from crosscheck import GR_NOTICES, enable_notices_frame


def main():
    host, port, ca, user, password, count = sys.argv[1:7]
    conn = Connection(
        {
            "host": host,
            "port": int(port),
            "user": user,
            "password": password,
            "ssl-mode": SSLMode.VERIFY_IDENTITY,
            "ssl-ca": ca,
            "compression": Compression.DISABLED,
            "connect-timeout": 5000,
        }
    )
    conn.connect()
    reader = conn.protocol._reader
    conn.stream.sendall(enable_notices_frame(GR_NOTICES))
    while True:
        msg = reader.read_message()
        if msg.type == "Mysqlx.Sql.StmtExecuteOk":
            break
        if msg.type != "Mysqlx.Notice.Frame":
            sys.exit(f"unexpected reply to enable_notices: {msg.type}")
    print("READY", flush=True)
    seen = 0
    while seen < int(count):
        msg = reader.read_message()
        if msg.type != "Mysqlx.Notice.Frame":
            sys.exit(f"unexpected message while waiting for notices: {msg.type}")
        if msg["type"] != notice.Frame.GROUP_REPLICATION_STATE_CHANGED:
            continue
        gr = notice.GroupReplicationStateChanged.FromString(msg["payload"])
        print(f"notice {gr.type} {gr.view_id}", flush=True)
        seen += 1
    conn.protocol.send_connection_close()
    conn.protocol.read_ok()
    print("CLOSED", flush=True)


if __name__ == "__main__":
    main()
