//! A MySQL account's user name and password, shared by the SQL operations and the X protocol
//! monitor, and reading secret values from a Secret. `Debug` never shows a password.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

/// A user name and password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl Credentials {
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            user: user.into(),
            password: password.into(),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The text values of a Secret's keys (bytes that are not UTF-8 are replaced).
pub(crate) struct SecretText(BTreeMap<String, String>);

impl SecretText {
    /// Reads Secret `name` in `ns`.
    pub(crate) async fn read(client: &Client, ns: &str, name: &str) -> Result<Self, kube::Error> {
        let secret = Api::<Secret>::namespaced(client.clone(), ns)
            .get(name)
            .await?;
        Ok(Self::from(secret))
    }

    pub(crate) fn get(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
}

impl From<Secret> for SecretText {
    fn from(secret: Secret) -> Self {
        SecretText(
            secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                .collect(),
        )
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_password() {
        let shown = format!("{:?}", Credentials::new("admin", "s3cr3t"));
        assert!(
            shown.contains("admin") && !shown.contains("s3cr3t"),
            "{shown}"
        );
    }

    #[test]
    fn secret_text_reads_values_and_debug_shows_only_keys() {
        let secret: Secret = serde_json::from_value(serde_json::json!({
            "data": {"username": "YWRtaW4=", "password": "czNjcjN0"}
        }))
        .unwrap();
        let text = SecretText::from(secret);
        assert_eq!(text.get("password").as_deref(), Some("s3cr3t"));
        assert_eq!(text.get("absent"), None);
        let shown = format!("{text:?}");
        assert!(
            shown.contains("username") && !shown.contains("s3cr3t"),
            "{shown}"
        );
    }
}
