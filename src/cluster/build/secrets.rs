//! Credentials Secrets: one `kubernetes.io/basic-auth` Secret per account. They are generated
//! once, created (never applied) so an existing password is never overwritten, and never logged.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use rand::Rng;

use crate::cluster::validate::ValidCluster;
use crate::objects::accounts::Account;
use crate::objects::names::Component;

/// Length of generated passwords (alphanumeric: about 190 bits).
pub(crate) const PASSWORD_LEN: usize = 32;

/// A random alphanumeric password from `rng`.
pub(crate) fn generate_password(rng: &mut impl Rng) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..PASSWORD_LEN)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

/// The Secret of `account` with `password`.
pub(crate) fn secret(c: &ValidCluster, account: Account, password: &str) -> Secret {
    Secret {
        metadata: c.meta(c.names.secret(account.suffix()), Component::Credentials),
        type_: Some("kubernetes.io/basic-auth".to_string()),
        data: Some(BTreeMap::from([
            (
                "username".to_string(),
                ByteString(account.user().as_bytes().to_vec()),
            ),
            (
                "password".to_string(),
                ByteString(password.as_bytes().to_vec()),
            ),
        ])),
        ..Default::default()
    }
}

/// Secrets for the accounts that have none yet, with fresh passwords from `rng`.
pub(crate) fn missing_secrets(
    c: &ValidCluster,
    existing: &std::collections::BTreeSet<Account>,
    rng: &mut impl Rng,
) -> Vec<Secret> {
    Account::ALL
        .into_iter()
        .filter(|a| !existing.contains(a))
        .map(|a| secret(c, a, &generate_password(rng)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::testing::valid_cluster;
    use rand::SeedableRng;
    use std::collections::BTreeSet;

    #[test]
    fn only_missing_accounts_get_secrets() {
        let c = valid_cluster("spec: {}");
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let existing = BTreeSet::from([Account::Root, Account::Router]);
        let made = missing_secrets(&c, &existing, &mut rng);
        let names: Vec<_> = made
            .iter()
            .map(|s| s.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(
            names,
            vec!["orders-admin", "orders-replication", "orders-backup"]
        );
        for s in &made {
            assert_eq!(s.type_.as_deref(), Some("kubernetes.io/basic-auth"));
            let data = s.data.as_ref().unwrap();
            assert_eq!(data["password"].0.len(), PASSWORD_LEN);
            assert!(data["password"].0.iter().all(u8::is_ascii_alphanumeric));
            assert_eq!(
                s.metadata.owner_references.as_ref().unwrap()[0].kind,
                "MySQLCluster"
            );
        }
        assert_eq!(
            made[0].data.as_ref().unwrap()["username"].0,
            b"innodb_admin"
        );
    }

    #[test]
    fn passwords_differ() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        assert_ne!(generate_password(&mut rng), generate_password(&mut rng));
    }
}
