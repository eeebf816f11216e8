//! X protocol (port 33060) monitor: framing, the few messages it needs, a client for the
//! capabilities health probe and for a TLS session that receives Group Replication notices, and a
//! monitor that keeps one task per member and publishes probe results and reconcile wake-ups.

pub mod backoff;
pub mod client;
pub mod frame;
pub mod messages;
pub mod monitor;
pub mod notice;
pub mod tls;

pub use client::{ConnOptions, Credentials, Endpoint, SessionOptions};
pub use monitor::{
    ClusterTargets, MemberEvent, Monitor, MonitorConfig, MonitorHandle, ProbeResult, Wake,
    WakeReason,
};
pub use notice::{GrEvent, GrEventKind};
pub use tls::{TlsOptions, TlsVerify};
