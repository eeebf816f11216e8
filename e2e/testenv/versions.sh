# Pinned versions of the control-plane programs the e2e tests run (sourced by testenv.sh).
# Kubernetes matches the k8s-openapi feature in Cargo.toml (v1_36); etcd is the version that
# Kubernetes release requires in its go.mod.
KUBE_VERSION="${KUBE_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.8}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
GO_MIN="${GO_MIN:-1.26.5}"  # the Go release Kubernetes v1.36 is built with (.go-version)
