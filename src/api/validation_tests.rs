//! The CRD's own validation (OpenAPI and CEL rules), evaluated client-side with kube's CEL
//! interpreter. The control-plane tests check the same corpus against a real API server.

use kube::core::cel::{validate_cel, validate_cel_update};
use serde_json::{Value, json};

use super::{Backup, MySQLCluster};

fn cluster(spec: Value) -> MySQLCluster {
    serde_json::from_value(json!({
        "apiVersion": "innodb-operator.io/v1alpha1",
        "kind": "MySQLCluster",
        "metadata": {"name": "orders", "namespace": "db"},
        "spec": spec,
    }))
    .expect("fixture deserializes")
}

fn cel_error(spec: Value) -> Option<String> {
    validate_cel(&cluster(spec)).err().map(|e| e.to_string())
}

#[test]
fn good_specs_pass() {
    for spec in [
        json!({}),
        json!({"backup": {"storage": {"bucket": "b-1"}, "schedules": [
            {"name": "nightly", "schedule": "0 3 * * *"},
            {"name": "hourly", "schedule": "@hourly"},
            {"name": "weekdays", "schedule": "*/15 8-18 * * MON-FRI"}]}}),
        json!({"storage": {"size": "500Mi"}}),
        json!({"restoreFrom": {"backup": "nightly-1"}}),
        json!({"networkPolicy": {"enabled": true, "routerFrom": [
            {"podSelector": {"matchLabels": {"app": "shop"}}},
            {"namespaceSelector": {}, "podSelector": {}},
            {"ipBlock": {"cidr": "10.0.0.0/8"}}]}}),
    ] {
        assert_eq!(cel_error(spec.clone()), None, "{spec}");
    }
}

#[test]
fn bad_specs_fail_with_a_message_users_understand() {
    let cases = [
        (
            json!({"backup": {"storage": {"bucket": "b"}, "schedules": [{"name": "n", "schedule": "every day"}]}}),
            "five-field cron",
        ),
        (
            json!({"backup": {"storage": {"bucket": "b"}, "schedules": [{"name": "n", "schedule": "0 3 * *"}]}}),
            "five-field cron",
        ),
        (
            json!({"backup": {"storage": {"bucket": "b"}, "schedules": [{"name": "n", "schedule": "99 3 * * *"}]}}),
            "values in range",
        ),
        (
            json!({"networkPolicy": {"routerFrom": [{}]}}),
            "ipBlock alone",
        ),
        (
            json!({"networkPolicy": {"routerFrom": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}}),
            "ipBlock alone",
        ),
        (
            json!({"storage": {"size": "ten gigs"}}),
            "positive Kubernetes quantity",
        ),
        (
            json!({"storage": {"size": "0"}}),
            "positive Kubernetes quantity",
        ),
        (json!({"restoreFrom": {}}), "exactly one of backup or s3"),
        (
            json!({"backup": {"storage": {"bucket": "b", "prefix": "/abs"}}}),
            "must not start with '/'",
        ),
    ];
    for (spec, message) in cases {
        let err = cel_error(spec.clone()).unwrap_or_else(|| panic!("{spec} passed"));
        assert!(err.contains(message), "{spec}: {err}");
    }
}

#[test]
fn immutable_fields_cannot_change() {
    let old = cluster(json!({"storage": {"size": "10Gi", "storageClassName": "fast"}}));
    let changed = cluster(json!({"storage": {"size": "10Gi", "storageClassName": "slow"}}));
    let err = validate_cel_update(&changed, &old).unwrap_err().to_string();
    assert!(err.contains("storageClassName is immutable"), "{err}");
    let removed = cluster(json!({"storage": {"size": "10Gi"}}));
    assert!(validate_cel_update(&removed, &old).is_err());
    assert!(validate_cel_update(&old.clone(), &old).is_ok());

    let xcom = cluster(json!({"groupCommunicationStack": "XCOM"}));
    let err = validate_cel_update(&cluster(json!({})), &xcom)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("groupCommunicationStack cannot be changed"),
        "{err}"
    );

    let restored = cluster(json!({"restoreFrom": {"backup": "a"}}));
    let err = validate_cel_update(&restored, &cluster(json!({})))
        .unwrap_err()
        .to_string();
    assert!(err.contains("restoreFrom cannot be changed"), "{err}");
}

#[test]
fn backup_cluster_name_is_immutable() {
    let backup = |cluster: &str| -> Backup {
        serde_json::from_value(json!({
            "apiVersion": "innodb-operator.io/v1alpha1", "kind": "Backup",
            "metadata": {"name": "b", "namespace": "db"},
            "spec": {"clusterName": cluster},
        }))
        .unwrap()
    };
    let err = validate_cel_update(&backup("other"), &backup("orders"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("clusterName is immutable"), "{err}");
    assert!(validate_cel_update(&backup("orders"), &backup("orders")).is_ok());
}

/// The schema's cron rule and the schedule parser agree: what the API server accepts the
/// operator can run, and what it refuses the parser would have refused too.
#[test]
fn the_cron_rule_accepts_what_the_schedule_parser_runs() {
    let with = |schedule: &str| json!({"backup": {"storage": {"bucket": "b"}, "schedules": [{"name": "n", "schedule": schedule}]}});
    for good in [
        "0 3 * * *",
        "*/15 8-18 * * MON-FRI",
        "5,35 */2 1-15/3 * SUN",
        "59 23 31 12 7",
        "0 0 L * ?",
        "0 0 15W * *",
        "0 12 * JAN-MAR 1#2",
        "0 12 * * 5L",
        "@daily",
        "@annually",
    ] {
        assert_eq!(cel_error(with(good)), None, "{good}");
        crate::backup_controller::schedule_plan::parse(good)
            .unwrap_or_else(|e| panic!("{good}: {e}"));
    }
    for bad in [
        "99 3 * * *",
        "0 24 * * *",
        "0 3 32 * *",
        "0 3 0 * *",
        "0 3 * 13 *",
        "0 3 * * 8",
        "@midnight",
    ] {
        assert!(cel_error(with(bad)).is_some(), "{bad} passed the schema");
        assert!(
            crate::backup_controller::schedule_plan::parse(bad).is_err(),
            "{bad}: the parser would run it"
        );
    }
    // Seconds are a croner extension the API does not offer.
    assert!(cel_error(with("0 3 * * * *")).is_some());
}

/// The schema's version rule and the operator's own check agree on every series boundary.
#[test]
fn the_version_rule_accepts_the_supported_series_only() {
    use crate::version::ServerVersion;
    for (version, supported) in [
        ("9.7.4", true),
        ("9.7.0", true),
        ("9.7.12", true),
        ("8.4.7", true),
        ("8.0.27", true),
        ("8.0.45", true),
        ("8.0.26", false),
        ("8.1.0", false),
        ("8.3.0", false),
        ("9.0.1", false),
        ("9.6.0", false),
        ("9.8.0", false),
        ("26.7.0", false),
        ("9.7", false),
        ("9.7.4-1", false),
    ] {
        let cel = cel_error(json!({"version": version}));
        assert_eq!(cel.is_none(), supported, "{version}: {cel:?}");
        if let Some(err) = cel {
            assert!(err.contains("9.7.x (LTS, the default)"), "{err}");
        }
        let operator = ServerVersion::parse_spec(version).and_then(|v| v.series());
        // The operator also reads "9.7" as 9.7.0; the schema wants the patch written out.
        if version != "9.7" {
            assert_eq!(operator.is_ok(), supported, "{version}: {operator:?}");
        }
    }
}

#[test]
fn a_cluster_name_must_fit_every_object_it_names() {
    let named = |name: &str| -> Option<String> {
        let c: MySQLCluster = serde_json::from_value(json!({
            "apiVersion": "innodb-operator.io/v1alpha1", "kind": "MySQLCluster",
            "metadata": {"name": name, "namespace": "db"}, "spec": {},
        }))
        .unwrap();
        validate_cel(&c).err().map(|e| e.to_string())
    };
    assert_eq!(named(&"a".repeat(52)), None);
    for bad in [
        "a".repeat(53),
        "orders.v1".to_string(),
        "1orders".to_string(),
    ] {
        let err = named(&bad).unwrap_or_else(|| panic!("{bad} passed"));
        assert!(err.contains("at most 52 characters"), "{bad}: {err}");
    }
    // The longest name allowed still makes valid Service names, and its NetworkPolicies' names
    // fit a label value too.
    for suffix in ["-instances", "-members", "-router-lb"] {
        let longest = format!("{}{suffix}", "a".repeat(52));
        assert!(longest.len() <= 63, "{longest}");
    }
}
