# Pinned versions of the control-plane programs the e2e tests run (sourced by testenv.sh).
# Kubernetes matches the k8s-openapi feature in Cargo.toml (v1_36); etcd is the version that
# Kubernetes release requires in its go.mod.
KUBE_VERSION="${KUBE_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.8}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
# The real node (testenv.sh build-node): container runtime, OCI runtime, cluster DNS.
CONTAINERD_VERSION="${CONTAINERD_VERSION:-v2.3.7}"  # Kubernetes v1.36 supports containerd 2.2+
RUNC_VERSION="${RUNC_VERSION:-v1.5.3}"
COREDNS_VERSION="${COREDNS_VERSION:-v1.15.0}"
CRICTL_VERSION="${CRICTL_VERSION:-v1.37.0}"
# The real node's NetworkPolicy enforcer: kube-router's firewall alone (iptables and ipset).
# v2.1.0 is the newest release this machine's Go module proxy serves (it refuses later ones).
KUBE_ROUTER_VERSION="${KUBE_ROUTER_VERSION:-v2.1.0}"
# The newest Go any of them needs: containerd v2.3.7's go.mod says 1.26.8 (Kubernetes v1.36
# is built with 1.26.5).
GO_MIN="${GO_MIN:-1.26.8}"
