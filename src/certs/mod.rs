//! The operator's certificate authority: one CA per cluster, and the certificates it signs for
//! the members, the Routers and the operator's own sessions. Pure apart from the key generation
//! (randomness from the system through ring); no client, no clock (the time comes in).
//!
//! - [`issue`] makes a CA and signs leaf certificates with it;
//! - [`validity`] says when a certificate is due for renewal;
//! - [`inspect`] reads when a certificate in PEM ends, whoever issued it;
//! - [`cert_manager`] is cert-manager's Certificate, for clusters whose issuer is cert-manager.

pub mod cert_manager;
pub mod inspect;
pub mod issue;
pub(crate) mod validity;

pub use issue::{KeyedCert, LeafRequest, Usage};
