//! X protocol (port 33060) monitor: framing, the few messages it needs, a client for the
//! capabilities health probe and for a TLS session that receives Group Replication notices, and a
//! monitor that keeps one task per member and publishes probe results and reconcile wake-ups.
//!
//! Wiring it into the controller (the key can be any `Clone + Eq + Hash + Debug` type; with
//! kube's `ObjectRef<InnoDBCluster>` the wake-ups feed `Controller::reconcile_on` directly):
//!
//! ```text
//! let (monitor, events) = Monitor::start::<ObjectRef<InnoDBCluster>>(MonitorConfig::default());
//! let wakes = events.filter_map(move |event| {
//!     if let MemberEvent::Probe(probe) = &event {
//!         metrics.observe_x_probe(&probe.endpoint, probe.latency_seconds());
//!     }
//!     std::future::ready(event.into_wake_key())
//! });
//! Controller::new(clusters, watcher::Config::default()).reconcile_on(wakes) ...
//!
//! // in reconcile, once the members are known (idempotent):
//! monitor.set_targets(ObjectRef::from_obj(&*cluster), ClusterTargets {
//!     endpoints: pods.iter().map(|p| Endpoint::new(p.fqdn(), 33060)).collect(),
//!     session: Some(SessionOptions {
//!         credentials: Credentials::new(user, password),
//!         tls: TlsOptions { verify: TlsVerify::AcceptSelfSigned, server_name: None },
//!     }),
//! })?;
//! // in the topology step: per-member probe/session state
//! let health: Vec<MemberHealth> = monitor.health(&ObjectRef::from_obj(&*cluster));
//! // on cleanup (finalizer / deletion):
//! monitor.remove(&ObjectRef::from_obj(&*cluster));
//! ```

pub mod backoff;
pub mod client;
pub mod frame;
pub mod health;
pub mod messages;
pub mod monitor;
pub mod notice;
pub mod tls;

pub use client::{ConnOptions, Credentials, Endpoint, SessionOptions};
pub use monitor::{ClusterTargets, MemberEvent, Monitor, MonitorConfig, Wake, WakeReason};
pub use notice::{GrEvent, GrEventKind};
pub use tls::{TlsOptions, TlsVerify};
