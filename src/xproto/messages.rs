//! The X protocol messages the monitor speaks, written by hand from the field numbers of the
//! server's proto2 definitions (`Mysqlx`, `Mysqlx.Connection`, `Mysqlx.Datatypes`,
//! `Mysqlx.Session`, `Mysqlx.Sql`, `Mysqlx.Notice`), and the typed client/server message sets
//! that map frame type numbers to them.

use prost::Message;

use super::frame::Frame;

#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("X protocol message type {msg_type} ({name}) has an invalid payload: {source}")]
    Decode {
        msg_type: u8,
        name: &'static str,
        source: prost::DecodeError,
    },
    #[error(
        "unexpected X protocol message type {0}: the peer speaks a protocol this client does not handle"
    )]
    UnknownType(u8),
}

// ---- Mysqlx ----

/// `Mysqlx.Ok`.
#[derive(Clone, PartialEq, Message)]
pub struct Ok {
    #[prost(string, optional, tag = "1")]
    pub msg: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Severity {
    Error = 0,
    Fatal = 1,
}

/// `Mysqlx.Error`. A `Fatal` error means the server closes the connection.
#[derive(Clone, PartialEq, Message)]
pub struct Error {
    #[prost(enumeration = "Severity", optional, tag = "1", default = "Error")]
    pub severity: Option<i32>,
    #[prost(uint32, required, tag = "2")]
    pub code: u32,
    #[prost(string, required, tag = "3")]
    pub msg: String,
    #[prost(string, required, tag = "4")]
    pub sql_state: String,
}

impl Error {
    pub fn is_fatal(&self) -> bool {
        self.severity() == Severity::Fatal
    }
}

// ---- Mysqlx.Datatypes ----

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ScalarType {
    VSint = 1,
    VUint = 2,
    VNull = 3,
    VOctets = 4,
    VDouble = 5,
    VFloat = 6,
    VBool = 7,
    VString = 8,
}

/// `Mysqlx.Datatypes.Scalar.String`.
#[derive(Clone, PartialEq, Message)]
pub struct ScalarString {
    #[prost(bytes = "vec", required, tag = "1")]
    pub(crate) value: Vec<u8>,
    #[prost(uint64, optional, tag = "2")]
    pub(crate) collation: Option<u64>,
}

/// `Mysqlx.Datatypes.Scalar.Octets`.
#[derive(Clone, PartialEq, Message)]
pub struct ScalarOctets {
    #[prost(bytes = "vec", required, tag = "1")]
    pub value: Vec<u8>,
    #[prost(uint32, optional, tag = "2")]
    pub content_type: Option<u32>,
}

/// `Mysqlx.Datatypes.Scalar`.
#[derive(Clone, PartialEq, Message)]
pub struct Scalar {
    #[prost(enumeration = "ScalarType", required, tag = "1")]
    pub r#type: i32,
    #[prost(sint64, optional, tag = "2")]
    pub v_signed_int: Option<i64>,
    #[prost(uint64, optional, tag = "3")]
    pub v_unsigned_int: Option<u64>,
    #[prost(message, optional, tag = "5")]
    pub v_octets: Option<ScalarOctets>,
    #[prost(double, optional, tag = "6")]
    pub v_double: Option<f64>,
    #[prost(float, optional, tag = "7")]
    pub v_float: Option<f32>,
    #[prost(bool, optional, tag = "8")]
    pub v_bool: Option<bool>,
    #[prost(message, optional, tag = "9")]
    pub v_string: Option<ScalarString>,
}

/// `Mysqlx.Datatypes.Object.ObjectField`.
#[derive(Clone, PartialEq, Message)]
pub struct ObjectField {
    #[prost(string, required, tag = "1")]
    pub key: String,
    #[prost(message, required, tag = "2")]
    pub value: Any,
}

/// `Mysqlx.Datatypes.Object`.
#[derive(Clone, PartialEq, Message)]
pub struct Object {
    #[prost(message, repeated, tag = "1")]
    pub fld: Vec<ObjectField>,
}

/// `Mysqlx.Datatypes.Array`.
#[derive(Clone, PartialEq, Message)]
pub struct Array {
    #[prost(message, repeated, tag = "1")]
    pub(crate) value: Vec<Any>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum AnyType {
    Scalar = 1,
    Object = 2,
    Array = 3,
}

/// `Mysqlx.Datatypes.Any`.
#[derive(Clone, PartialEq, Message)]
pub struct Any {
    #[prost(enumeration = "AnyType", required, tag = "1")]
    pub r#type: i32,
    #[prost(message, optional, tag = "2")]
    pub scalar: Option<Scalar>,
    #[prost(message, optional, boxed, tag = "3")]
    pub obj: Option<Box<Object>>,
    #[prost(message, optional, boxed, tag = "4")]
    pub array: Option<Box<Array>>,
}

impl Any {
    pub fn from_scalar(scalar: Scalar) -> Self {
        Self {
            r#type: AnyType::Scalar as i32,
            scalar: Some(scalar),
            obj: None,
            array: None,
        }
    }

    pub fn bool(value: bool) -> Self {
        Self::from_scalar(Scalar {
            r#type: ScalarType::VBool as i32,
            v_bool: Some(value),
            ..Default::default()
        })
    }

    pub fn string(value: &str) -> Self {
        Self::from_scalar(Scalar {
            r#type: ScalarType::VString as i32,
            v_string: Some(ScalarString {
                value: value.as_bytes().to_vec(),
                collation: None,
            }),
            ..Default::default()
        })
    }

    pub fn array(values: Vec<Any>) -> Self {
        Self {
            r#type: AnyType::Array as i32,
            scalar: None,
            obj: None,
            array: Some(Box::new(Array { value: values })),
        }
    }

    pub(crate) fn object(fields: Vec<(&str, Any)>) -> Self {
        let fld = fields
            .into_iter()
            .map(|(key, value)| ObjectField {
                key: key.to_owned(),
                value,
            })
            .collect();
        Self {
            r#type: AnyType::Object as i32,
            scalar: None,
            obj: Some(Box::new(Object { fld })),
            array: None,
        }
    }

    /// The value of a boolean scalar.
    pub fn as_bool(&self) -> Option<bool> {
        let scalar = self.scalar.as_ref()?;
        (scalar.r#type() == ScalarType::VBool)
            .then_some(scalar.v_bool)
            .flatten()
    }

    /// The value of a string scalar, or of an octets scalar that holds UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        let scalar = self.scalar.as_ref()?;
        let bytes = match scalar.r#type() {
            ScalarType::VString => &scalar.v_string.as_ref()?.value,
            ScalarType::VOctets => &scalar.v_octets.as_ref()?.value,
            _ => return None,
        };
        std::str::from_utf8(bytes).ok()
    }

    /// The elements of an array.
    pub fn as_array(&self) -> Option<&[Any]> {
        match self.r#type() {
            AnyType::Array => self.array.as_deref().map(|a| a.value.as_slice()),
            _ => None,
        }
    }

    /// The value of `key` in an object.
    pub fn get(&self, key: &str) -> Option<&Any> {
        self.obj
            .as_deref()?
            .fld
            .iter()
            .find(|f| f.key == key)
            .map(|f| &f.value)
    }
}

// ---- Mysqlx.Connection ----

/// `Mysqlx.Connection.Capability`.
#[derive(Clone, PartialEq, Message)]
pub struct Capability {
    #[prost(string, required, tag = "1")]
    pub name: String,
    #[prost(message, required, tag = "2")]
    pub value: Any,
}

/// `Mysqlx.Connection.Capabilities`.
#[derive(Clone, PartialEq, Message)]
pub struct Capabilities {
    #[prost(message, repeated, tag = "1")]
    pub capabilities: Vec<Capability>,
}

impl Capabilities {
    pub fn get(&self, name: &str) -> Option<&Any> {
        self.capabilities
            .iter()
            .find(|c| c.name == name)
            .map(|c| &c.value)
    }
}

/// `Mysqlx.Connection.CapabilitiesGet`.
#[derive(Clone, PartialEq, Message)]
pub struct CapabilitiesGet {}

/// `Mysqlx.Connection.CapabilitiesSet`.
#[derive(Clone, PartialEq, Message)]
pub struct CapabilitiesSet {
    #[prost(message, required, tag = "1")]
    pub capabilities: Capabilities,
}

/// `Mysqlx.Connection.Close`.
#[derive(Clone, PartialEq, Message)]
pub struct Close {}

// ---- Mysqlx.Session ----

/// `Mysqlx.Session.AuthenticateStart`.
#[derive(Clone, PartialEq, Message)]
pub struct AuthenticateStart {
    #[prost(string, required, tag = "1")]
    pub mech_name: String,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub auth_data: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub initial_response: Option<Vec<u8>>,
}

/// `Mysqlx.Session.AuthenticateContinue` (both directions).
#[derive(Clone, PartialEq, Message)]
pub struct AuthenticateContinue {
    #[prost(bytes = "vec", required, tag = "1")]
    pub auth_data: Vec<u8>,
}

/// `Mysqlx.Session.AuthenticateOk`.
#[derive(Clone, PartialEq, Message)]
pub struct AuthenticateOk {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub auth_data: Option<Vec<u8>>,
}

/// `Mysqlx.Session.Close`.
#[derive(Clone, PartialEq, Message)]
pub struct SessionClose {}

// ---- Mysqlx.Sql ----

/// `Mysqlx.Sql.StmtExecute`.
#[derive(Clone, PartialEq, Message)]
pub struct StmtExecute {
    #[prost(bytes = "vec", required, tag = "1")]
    pub stmt: Vec<u8>,
    #[prost(message, repeated, tag = "2")]
    pub args: Vec<Any>,
    #[prost(string, optional, tag = "3", default = "sql")]
    pub namespace: Option<String>,
    #[prost(bool, optional, tag = "4", default = "false")]
    pub compact_metadata: Option<bool>,
}

/// `Mysqlx.Sql.StmtExecuteOk`.
#[derive(Clone, PartialEq, Message)]
pub struct StmtExecuteOk {}

// ---- Mysqlx.Notice ----

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum NoticeScope {
    Global = 1,
    Local = 2,
}

/// Values of `Mysqlx.Notice.Frame.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum NoticeType {
    Warning = 1,
    SessionVariableChanged = 2,
    SessionStateChanged = 3,
    GroupReplicationStateChanged = 4,
    ServerHello = 5,
}

/// `Mysqlx.Notice.Frame`.
#[derive(Clone, PartialEq, Message)]
pub struct NoticeFrame {
    #[prost(uint32, required, tag = "1")]
    pub r#type: u32,
    #[prost(enumeration = "NoticeScope", optional, tag = "2", default = "Global")]
    pub scope: Option<i32>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub payload: Option<Vec<u8>>,
}

/// Values of `Mysqlx.Notice.GroupReplicationStateChanged.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum GroupReplicationChange {
    MembershipQuorumLoss = 1,
    MembershipViewChange = 2,
    MemberRoleChange = 3,
    MemberStateChange = 4,
}

/// `Mysqlx.Notice.GroupReplicationStateChanged`.
#[derive(Clone, PartialEq, Message)]
pub struct GroupReplicationStateChanged {
    #[prost(uint32, required, tag = "1")]
    pub r#type: u32,
    #[prost(string, optional, tag = "2")]
    pub view_id: Option<String>,
}

// ---- message sets ----

macro_rules! message_set {
    ($(#[$meta:meta])* $name:ident { $($variant:ident($ty:ty) = $num:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub enum $name {
            $($variant($ty),)*
        }

        impl $name {
            /// The frame type number of this message.
            pub fn msg_type(&self) -> u8 {
                match self {
                    $(Self::$variant(_) => $num,)*
                }
            }

            /// The protobuf payload of this message.
            pub(crate) fn encode_payload(&self) -> Vec<u8> {
                match self {
                    $(Self::$variant(m) => m.encode_to_vec(),)*
                }
            }

            pub fn to_frame(&self) -> Frame {
                Frame {
                    msg_type: self.msg_type(),
                    payload: self.encode_payload().into(),
                }
            }

            /// Decodes a frame; an unknown type number or a malformed payload is an error.
            pub fn decode(frame: &Frame) -> Result<Self, MessageError> {
                match frame.msg_type {
                    $($num => <$ty>::decode(frame.payload.clone())
                        .map(Self::$variant)
                        .map_err(|source| MessageError::Decode {
                            msg_type: frame.msg_type,
                            name: stringify!($variant),
                            source,
                        }),)*
                    other => Err(MessageError::UnknownType(other)),
                }
            }
        }
    };
}

message_set! {
    /// Messages a client sends.
    ClientMessage {
        CapabilitiesGet(CapabilitiesGet) = 1,
        CapabilitiesSet(CapabilitiesSet) = 2,
        Close(Close) = 3,
        AuthenticateStart(AuthenticateStart) = 4,
        AuthenticateContinue(AuthenticateContinue) = 5,
        SessionClose(SessionClose) = 7,
        StmtExecute(StmtExecute) = 12,
    }
}

message_set! {
    /// Messages a server sends (the subset the monitor understands).
    ServerMessage {
        Ok(Ok) = 0,
        Error(Error) = 1,
        Capabilities(Capabilities) = 2,
        AuthenticateContinue(AuthenticateContinue) = 3,
        AuthenticateOk(AuthenticateOk) = 4,
        Notice(NoticeFrame) = 11,
        StmtExecuteOk(StmtExecuteOk) = 17,
    }
}

/// `StmtExecute` in the `mysqlx` namespace (admin commands such as `ping`, `enable_notices`).
pub fn admin_command(command: &str, args: Vec<Any>) -> StmtExecute {
    StmtExecute {
        stmt: command.as_bytes().to_vec(),
        args,
        namespace: Some("mysqlx".to_owned()),
        compact_metadata: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip_client(msg: ClientMessage) -> ClientMessage {
        let back = ClientMessage::decode(&msg.to_frame()).unwrap();
        assert_eq!(back, msg);
        back
    }

    fn round_trip_server(msg: ServerMessage) -> ServerMessage {
        let back = ServerMessage::decode(&msg.to_frame()).unwrap();
        assert_eq!(back, msg);
        back
    }

    #[test]
    fn capabilities_get_has_empty_payload() {
        let msg = ClientMessage::CapabilitiesGet(CapabilitiesGet {});
        assert_eq!(msg.msg_type(), 1);
        assert!(msg.encode_payload().is_empty());
        round_trip_client(msg);
    }

    #[test]
    fn capabilities_set_tls_wire_bytes() {
        let msg = CapabilitiesSet {
            capabilities: Capabilities {
                capabilities: vec![Capability {
                    name: "tls".into(),
                    value: Any::bool(true),
                }],
            },
        };
        // capabilities{ capability{ name="tls" value{ type=SCALAR scalar{ type=V_BOOL v_bool=true }}}}
        let expected: &[u8] = &[
            0x0a, 0x11, 0x0a, 0x0f, 0x0a, 0x03, b't', b'l', b's', 0x12, 0x08, 0x08, 0x01, 0x12,
            0x04, 0x08, 0x07, 0x40, 0x01,
        ];
        assert_eq!(msg.encode_to_vec(), expected);
        let back = round_trip_client(ClientMessage::CapabilitiesSet(msg));
        let ClientMessage::CapabilitiesSet(set) = back else {
            panic!("wrong variant")
        };
        assert_eq!(
            set.capabilities.get("tls").and_then(Any::as_bool),
            Some(true)
        );
    }

    #[test]
    fn close_and_session_close_round_trip() {
        assert_eq!(
            round_trip_client(ClientMessage::Close(Close {})).msg_type(),
            3
        );
        assert_eq!(
            round_trip_client(ClientMessage::SessionClose(SessionClose {})).msg_type(),
            7
        );
    }

    #[test]
    fn authenticate_messages_round_trip() {
        let start = AuthenticateStart {
            mech_name: "PLAIN".into(),
            auth_data: Some(b"\0u\0p".to_vec()),
            initial_response: None,
        };
        assert_eq!(
            round_trip_client(ClientMessage::AuthenticateStart(start)).msg_type(),
            4
        );
        let cont = AuthenticateContinue {
            auth_data: b"x".to_vec(),
        };
        assert_eq!(
            round_trip_client(ClientMessage::AuthenticateContinue(cont.clone())).msg_type(),
            5
        );
        assert_eq!(
            round_trip_server(ServerMessage::AuthenticateContinue(cont)).msg_type(),
            3
        );
        let ok = AuthenticateOk { auth_data: None };
        assert_eq!(
            round_trip_server(ServerMessage::AuthenticateOk(ok)).msg_type(),
            4
        );
    }

    #[test]
    fn stmt_execute_namespace_default_is_sql() {
        let stmt = StmtExecute {
            stmt: b"SELECT 1".to_vec(),
            args: vec![],
            namespace: None,
            compact_metadata: None,
        };
        assert_eq!(stmt.namespace(), "sql");
        assert!(!stmt.compact_metadata());
        round_trip_client(ClientMessage::StmtExecute(stmt));
    }

    #[test]
    fn scalar_variants_round_trip() {
        let scalar = Scalar {
            r#type: ScalarType::VSint as i32,
            v_signed_int: Some(-5),
            v_unsigned_int: Some(7),
            v_octets: Some(ScalarOctets {
                value: b"oct".to_vec(),
                content_type: Some(2),
            }),
            v_double: Some(1.5),
            v_float: Some(0.25),
            v_bool: Some(false),
            v_string: Some(ScalarString {
                value: b"s".to_vec(),
                collation: Some(255),
            }),
        };
        // sint64 is zig-zag encoded: -5 -> 9.
        assert_eq!(&scalar.encode_to_vec()[..4], &[0x08, 0x01, 0x10, 0x09]);
        assert_eq!(Scalar::decode(&scalar.encode_to_vec()[..]).unwrap(), scalar);
    }

    #[test]
    fn accessors_reject_other_types() {
        assert_eq!(Any::string("x").as_bool(), None);
        assert_eq!(Any::bool(true).as_str(), None);
        assert!(Any::bool(true).as_array().is_none());
        assert!(Any::bool(true).get("k").is_none());
    }

    #[test]
    fn server_messages_round_trip() {
        round_trip_server(ServerMessage::Ok(Ok {
            msg: Some("bye!".into()),
        }));
        let err = Error {
            severity: Some(Severity::Fatal as i32),
            code: 5001,
            msg: "boom".into(),
            sql_state: "HY000".into(),
        };
        assert!(err.is_fatal());
        round_trip_server(ServerMessage::Error(err));
        let default_severity = Error {
            severity: None,
            code: 1,
            msg: String::new(),
            sql_state: String::new(),
        };
        assert!(!default_severity.is_fatal());
        round_trip_server(ServerMessage::Capabilities(Capabilities {
            capabilities: vec![Capability {
                name: "authentication.mechanisms".into(),
                value: Any::array(vec![Any::string("PLAIN")]),
            }],
        }));
        round_trip_server(ServerMessage::StmtExecuteOk(StmtExecuteOk {}));
    }

    #[test]
    fn notice_frames_round_trip() {
        let gr = GroupReplicationStateChanged {
            r#type: GroupReplicationChange::MembershipViewChange as u32,
            view_id: Some("17000:3".into()),
        };
        let frame = NoticeFrame {
            r#type: NoticeType::GroupReplicationStateChanged as u32,
            scope: Some(NoticeScope::Global as i32),
            payload: Some(gr.encode_to_vec()),
        };
        let ServerMessage::Notice(back) = round_trip_server(ServerMessage::Notice(frame)) else {
            panic!("wrong variant")
        };
        assert_eq!(back.scope(), NoticeScope::Global);
        let inner = GroupReplicationStateChanged::decode(&back.payload.unwrap()[..]).unwrap();
        assert_eq!(inner, gr);
        assert_eq!(
            NoticeFrame {
                r#type: 1,
                scope: None,
                payload: None
            }
            .scope(),
            NoticeScope::Global
        );
    }

    #[test]
    fn unknown_type_and_bad_payload_are_errors() {
        let unknown = Frame {
            msg_type: 13,
            payload: Default::default(),
        };
        assert!(matches!(
            ServerMessage::decode(&unknown),
            Err(MessageError::UnknownType(13))
        ));
        let bad = Frame {
            msg_type: 1,
            payload: bytes::Bytes::from_static(&[0x12, 0x05, b'x']),
        };
        let err = ServerMessage::decode(&bad).unwrap_err();
        assert!(
            matches!(err, MessageError::Decode { msg_type: 1, .. }),
            "{err}"
        );
    }
}
