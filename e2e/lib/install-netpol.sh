#!/usr/bin/env bash
# Idempotent installer of kube-network-policies (sigs.k8s.io/kube-network-policies, pinned in
# e2e/testenv/versions.sh), a NetworkPolicy enforcer for the real node, whose bridge CNI enforces
# none: built from its Go module into $IOP_CACHE/testenv/<kube version>/bin like the other
# testenv binaries (cached: a warm run takes about a second). It only builds; running it is the
# node's business (it needs root, the nf_tables and nfnetlink_queue kernel modules and the
# in-cluster service-account environment). Not a stage of e2e/test-all.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
start=$SECONDS
"$here/../testenv/testenv.sh" build-netpol
echo "install-netpol: $("$here/../testenv/testenv.sh" bin)/kube-network-policies ready ($((SECONDS - start))s)"
