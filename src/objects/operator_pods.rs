//! Who the operator's own pods are: their namespace and labels, as the chart sets them
//! (`POD_NAMESPACE`, `OPERATOR_POD_LABELS`). The members' NetworkPolicy admits these pods.

use std::collections::BTreeMap;

/// The operator's pods: the pods with `labels` in `namespace`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorPods {
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
}

/// Settings that do not name the operator's pods.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OperatorPodsError {
    #[error(
        "the operator's pod labels are set but not its namespace: set POD_NAMESPACE (the chart sets it from the pod's metadata.namespace)"
    )]
    NoNamespace,
    #[error(
        "the operator's pod labels {0:?} are not `key=value` pairs separated by commas: set OPERATOR_POD_LABELS like app.kubernetes.io/name=innodb-operator,app.kubernetes.io/instance=innodb-operator"
    )]
    BadLabels(String),
}

impl OperatorPods {
    /// From the settings: `None` when no labels are given (an operator run outside the
    /// cluster, whose pods no NetworkPolicy can name).
    pub fn from_settings(
        namespace: Option<&str>,
        labels: Option<&str>,
    ) -> Result<Option<Self>, OperatorPodsError> {
        let Some(text) = labels.filter(|l| !l.trim().is_empty()) else {
            return Ok(None);
        };
        let namespace = namespace
            .filter(|n| !n.is_empty())
            .ok_or(OperatorPodsError::NoNamespace)?;
        let bad = || OperatorPodsError::BadLabels(text.to_string());
        let mut parsed = BTreeMap::new();
        for pair in text.split(',') {
            let (k, v) = pair.trim().split_once('=').ok_or_else(bad)?;
            let (k, v) = (k.trim(), v.trim());
            if k.is_empty() || v.contains('=') {
                return Err(bad());
            }
            parsed.insert(k.to_string(), v.to_string());
        }
        Ok(Some(OperatorPods {
            namespace: namespace.to_string(),
            labels: parsed,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_namespace_name_the_pods() {
        let pods = OperatorPods::from_settings(
            Some("ops"),
            Some("app.kubernetes.io/name=innodb-operator, app.kubernetes.io/instance=rel"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(pods.namespace, "ops");
        assert_eq!(
            pods.labels,
            BTreeMap::from([
                ("app.kubernetes.io/instance".into(), "rel".into()),
                ("app.kubernetes.io/name".into(), "innodb-operator".into()),
            ])
        );
    }

    #[test]
    fn no_labels_is_no_pods_and_bad_settings_say_what_to_set() {
        assert_eq!(OperatorPods::from_settings(Some("ops"), None), Ok(None));
        assert_eq!(OperatorPods::from_settings(None, Some(" ")), Ok(None));
        assert_eq!(
            OperatorPods::from_settings(None, Some("a=b")),
            Err(OperatorPodsError::NoNamespace)
        );
        for bad in ["a", "=b", "a=b=c", "a=b,,c=d"] {
            assert_eq!(
                OperatorPods::from_settings(Some("ops"), Some(bad)),
                Err(OperatorPodsError::BadLabels(bad.into())),
                "{bad}"
            );
        }
    }
}
