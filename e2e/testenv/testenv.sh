#!/usr/bin/env bash
# A real Kubernetes control plane on loopback, built from Go modules: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler and kwok (fake nodes whose pods become Running), plus
# helm for chart tests. No container engine is needed.
#
#   testenv.sh build        build the pinned binaries into $TESTENV_BIN (cached; a no-op when warm)
#   testenv.sh build-node   also kubelet, kube-proxy, containerd, runc, CoreDNS, crictl, pause and
#                           kube-router (the node's NetworkPolicy enforcer)
#   testenv.sh up [DIR] [--node]
#                           start everything with state in DIR, wait until healthy, print env;
#                           --node: a real node (node.sh) runs the pods instead of kwok
#   testenv.sh node-restart [DIR]
#                           the real node goes down hard (every process SIGKILLed) and comes back
#   testenv.sh down [DIR]   stop what `up` started in DIR (no process is left behind)
#   testenv.sh env [DIR]    print `export KUBECONFIG=...` lines for a running control plane
#   testenv.sh bin          print the directory holding the binaries
#
# Environment: IOP_CACHE (default /root/.cache/innodb-operator), TESTENV_NODES (fake nodes, 3),
# TESTENV_DIR (state dir, default $IOP_CACHE/testenv/run), versions in versions.sh.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/versions.sh"
IOP_CACHE="${IOP_CACHE:-/root/.cache/innodb-operator}"
TESTENV_ROOT="$IOP_CACHE/testenv/$KUBE_VERSION"
TESTENV_BIN="$TESTENV_ROOT/bin"
TESTENV_NODES_SET="${TESTENV_NODES:-}"
TESTENV_NODES="${TESTENV_NODES:-3}"
# The apiserver's address: loopback, or the real node's address (cmd_up --node).
API_HOST=127.0.0.1
source "$here/node.sh"

log() { echo "testenv: $*" >&2; }
die() { DIED="$*"; log "error: $*"; exit 1; }

# ---------------------------------------------------------------------------------------------
# build

# go_proxy: the first Go module proxy of $GOPROXY, or of the installed go's own configuration
# (`go env GOPROXY`); the repository names none.
go_proxy() {
  local list="${GOPROXY:-}"
  [ -n "$list" ] || ! command -v go > /dev/null || list="$(go env GOPROXY)"
  local first="${list%%[,|]*}"
  case "$first" in
    http://*|https://*) echo "${first%/}" ;;
    *) die "no Go module proxy configured (GOPROXY is '${list}'): set GOPROXY to your module proxy's URL" ;;
  esac
}

# go_toolchain: Go $GO_MIN itself, fetched as the module golang.org/toolchain from the Go module
# proxy (what `GOTOOLCHAIN` does), for machines whose Go is missing or too old to switch.
go_toolchain() {
  local v="v0.0.1-go$GO_MIN.linux-amd64" dir="$IOP_CACHE/go/toolchain"
  local root="$dir/golang.org/toolchain@$v"
  if [ ! -x "$root/bin/go" ]; then
    log "fetching Go $GO_MIN (module golang.org/toolchain@$v) from the Go module proxy"
    mkdir -p "$dir"
    curl -fsSL "$(go_proxy)/golang.org/toolchain/@v/$v.zip" -o "$dir/$v.zip"
    rm -rf "$root"
    unzip -q "$dir/$v.zip" -d "$dir"
    rm -f "$dir/$v.zip"
    # Module zips carry no file modes.
    chmod +x "$root"/bin/* "$root"/pkg/tool/*/*
  fi
  echo "$root/bin/go"
}

go_env() {
  local go=/usr/local/go/bin/go
  [ -x "$go" ] || go="$(command -v go || true)"
  # GOTOOLCHAIN switching needs Go >= 1.21; anything older (Debian 12 has 1.19) is bypassed.
  if [ -z "$go" ] || [ "$(printf '%s\n%s\n' go1.21 "$(GOTOOLCHAIN=local "$go" env GOVERSION 2>/dev/null || echo go1.0)" | sort -V | head -n1)" != go1.21 ]; then
    go=$(go_toolchain)
  fi
  GO="$go"
  export GOFLAGS=-trimpath CGO_ENABLED=0
  export GOCACHE="${GOCACHE:-$IOP_CACHE/go/build}"
  export GOMODCACHE="${GOMODCACHE:-$IOP_CACHE/go/mod}"
  export GOPATH="${GOPATH:-$IOP_CACHE/go/path}"
  # Kubernetes needs Go >= $GO_MIN; an older local Go fetches that toolchain from the module proxy.
  local have
  have=$(GOTOOLCHAIN=local "$GO" env GOVERSION)
  if [ "$(printf '%s\n%s\n' "go$GO_MIN" "$have" | sort -V | head -n1)" = "go$GO_MIN" ]; then
    export GOTOOLCHAIN=local
  else
    log "local $have is older than go$GO_MIN; using toolchain go$GO_MIN from the module proxy"
    export GOTOOLCHAIN="go$GO_MIN"
  fi
}

# wrapper_module DIR NAME: a scratch module that only requires what it builds.
wrapper_module() {
  local dir=$1 name=$2
  mkdir -p "$dir"
  if [ ! -f "$dir/go.mod" ]; then
    printf 'module iop-testenv/%s\n\ngo 1.26.0\n' "$name" > "$dir/go.mod"
  fi
}

# The kube binaries: k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them
# with ./staging paths, which only work inside its own repository. The wrapper requires the
# release and points each staging module at its published tag (v1.X.Y -> v0.X.Y).
#   build_kube CMD...   (names under k8s.io/kubernetes/cmd)
build_kube() {
  local dir="$TESTENV_ROOT/src/kube" staging="v0.${KUBE_VERSION#v1.}"
  wrapper_module "$dir" kube
  cd "$dir"
  if ! grep -q "k8s.io/kubernetes $KUBE_VERSION" go.mod; then
    "$GO" mod download -json "k8s.io/kubernetes@$KUBE_VERSION" > /dev/null
    local upstream
    upstream="$("$GO" env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$KUBE_VERSION.mod"
    local mods
    mods=$(awk '$2 == "=>" && $3 ~ /^\.\/staging\// {print $1}' "$upstream")
    [ -n "$mods" ] || die "no staging replace directives found in $upstream"
    for m in $mods; do "$GO" mod edit -replace "$m=$m@$staging"; done
    "$GO" mod edit -require "k8s.io/kubernetes@$KUBE_VERSION"
  fi
  local cmd pkgs=()
  for cmd in "$@"; do pkgs+=("k8s.io/kubernetes/cmd/$cmd"); done
  "$GO" get "${pkgs[@]/%/@$KUBE_VERSION}"
  local v pkg ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    v="${KUBE_VERSION#v}"
    ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=${v%%.*}"
    v="${v#*.}"
    ldflags+=" -X $pkg.gitMinor=${v%%.*} -X $pkg.gitTreeState=clean"
    ldflags+=" -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  nice -n 15 "$GO" build -ldflags "$ldflags" -o "$TESTENV_BIN/" "${pkgs[@]}"
  for cmd in "$@"; do built "$cmd" "$KUBE_VERSION"; done
}

# build_go NAME PKG VERSION [LDFLAGS [BUILD FLAGS...]]: one main package of a module that can
# be required as is, into $TESTENV_BIN/NAME.
build_go() {
  local name=$1 pkg=$2 version=$3 ldflags="-s -w ${4:-}"
  shift 4 2>/dev/null || shift $#
  local dir="$TESTENV_ROOT/src/$name"
  wrapper_module "$dir" "$name"
  cd "$dir"
  "$GO" get "$pkg@$version"
  nice -n 15 "$GO" build -ldflags "$ldflags" "$@" -o "$TESTENV_BIN/$name" "$pkg"
}

# have NAME VERSION: the binary exists and was built from VERSION.
have() { [ -x "$TESTENV_BIN/$1" ] && [ "$(cat "$TESTENV_BIN/.$1.version" 2>/dev/null)" = "$2" ]; }
built() { echo "$2" > "$TESTENV_BIN/.$1.version"; }

cmd_build() {
  go_env
  mkdir -p "$TESTENV_BIN"
  local start=$SECONDS
  if ! have kube-apiserver "$KUBE_VERSION" || ! have kube-controller-manager "$KUBE_VERSION" ||
     ! have kube-scheduler "$KUBE_VERSION"; then
    log "building kube-apiserver, kube-controller-manager, kube-scheduler $KUBE_VERSION"
    build_kube kube-apiserver kube-controller-manager kube-scheduler
  fi
  if ! have etcd "$ETCD_VERSION"; then
    log "building etcd $ETCD_VERSION"
    build_go etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION"
    built etcd "$ETCD_VERSION"
  fi
  if ! have kwok "$KWOK_VERSION"; then
    log "building kwok $KWOK_VERSION"
    build_go kwok sigs.k8s.io/kwok/cmd/kwok "$KWOK_VERSION" \
      "-X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}"
    built kwok "$KWOK_VERSION"
  fi
  if ! have helm "$HELM_VERSION"; then
    log "building helm $HELM_VERSION"
    build_go helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" \
      "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
    built helm "$HELM_VERSION"
  fi
  log "binaries ready in $TESTENV_BIN ($((SECONDS - start))s)"
}

# ---------------------------------------------------------------------------------------------
# up / down

state_dir() { echo "${1:-${TESTENV_DIR:-$IOP_CACHE/testenv/run}}"; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_ports N: N distinct loopback ports nobody listens on (a random start spreads concurrent runs).
# They lie below the kernel's ephemeral range: a port from that range, free when chosen, can be
# taken as the source port of one of the apiserver's own connections before its component binds.
free_ports() {
  local n=$1 low=32768 p got=()
  read -r low _ < /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
  [ "$low" -gt 12000 ] || low=32768
  p=$((10000 + RANDOM % (low - 12000)))
  while [ "${#got[@]}" -lt "$n" ]; do
    port_free "$p" && got+=("$p")
    p=$((p + 1))
  done
  echo "${got[@]}"
}

# pki DIR [NODE_IP]: a CA, the apiserver's serving certificate (127.0.0.1, localhost, and the
# node's address with a real node), a client certificate in system:masters for the admin
# kubeconfig, and the service-account token signing key; with a real node also the kubelet's
# client (system:node:NAME) and serving certificates and the apiserver's client for kubelets.
pki() {
  local d=$1 node_ip=${2:-}
  mkdir -p "$d"
  (
    cd "$d"
    openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null
    openssl req -x509 -new -key ca.key -days 30 -subj "/CN=testenv-ca" -out ca.crt \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    leaf() { # leaf NAME SUBJECT EXTENSIONS
      openssl ecparam -name prime256v1 -genkey -noout -out "$1.key" 2>/dev/null
      openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"
      printf '%b' "$3" > "$1.ext"
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
        -extfile "$1.ext" -out "$1.crt" 2>/dev/null
      rm -f "$1.csr" "$1.ext"
    }
    local server="basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
    local client="basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n"
    leaf apiserver "/CN=kube-apiserver" \
      "${server}subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.0.0.1${node_ip:+,IP:$node_ip}\n"
    leaf admin "/O=system:masters/CN=testenv-admin" "$client"
    if [ -n "$node_ip" ]; then
      leaf kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" "$client"
      leaf kubelet-serving "/CN=$NODE_NAME" "${server}subjectAltName=IP:$node_ip,DNS:$NODE_NAME\n"
      leaf apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$client"
    fi
    openssl ecparam -name prime256v1 -genkey -noout -out sa.key 2>/dev/null
    openssl ec -in sa.key -pubout -out sa.pub 2>/dev/null
  )
}

b64() { base64 -w0 < "$1"; }

write_kubeconfig() { # write_kubeconfig FILE DIR PORT [CERT NAME]
  local file=$1 d=$2 port=$3 cert=${4:-admin}
  cat > "$file" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: testenv
  cluster:
    server: https://$API_HOST:$port
    certificate-authority-data: $(b64 "$d/pki/ca.crt")
users:
- name: admin
  user:
    client-certificate-data: $(b64 "$d/pki/$cert.crt")
    client-key-data: $(b64 "$d/pki/$cert.key")
contexts:
- name: testenv
  context: {cluster: testenv, user: admin, namespace: default}
current-context: testenv
KUBECONFIG
}

# start DIR NAME ARGS...: runs a binary in its own session, logs to DIR/logs/NAME.log.
start() {
  local d=$1 name=$2; shift 2
  # The pid is written by the process itself: setsid forks when the caller has job control.
  setsid bash -c 'echo $$ > "$1"; shift; exec "$@"' start "$d/pids/$name.pid" "$TESTENV_BIN/$name" "$@" \
    > "$d/logs/$name.log" 2>&1 < /dev/null &
  local i
  for i in $(seq 1 50); do [ -s "$d/pids/$name.pid" ] && return 0; sleep 0.1; done
  die "$name did not start"
}

running() { [ -f "$1/pids/$2.pid" ] && kill -0 "$(cat "$1/pids/$2.pid")" 2>/dev/null; }

# wait_for DIR NAME SECONDS CMD...: until CMD succeeds; fails early when NAME's process died.
wait_for() {
  local d=$1 name=$2 timeout=$3; shift 3
  local deadline=$((SECONDS + timeout))
  until "$@" > /dev/null 2>&1; do
    if ! running "$d" "$name"; then
      die "$name exited during startup (log: $d/logs/$name.log)"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      die "$name not healthy after ${timeout}s (log: $d/logs/$name.log)"
    fi
    sleep 0.2
  done
}

# api METHOD PATH [BODY]: a request to the apiserver as admin.
api() {
  local d=$STATE method=$1 path=$2
  curl -sSf --cacert "$d/pki/ca.crt" --cert "$d/pki/admin.crt" --key "$d/pki/admin.key" \
    -X "$method" -H 'Content-Type: application/json' ${3:+--data-binary "$3"} \
    "https://$API_HOST:$(cat "$d/ports/apiserver")$path"
}

# healthz NAME: a component's /healthz on its secure port (always allowed without credentials).
healthz() {
  [ "$(curl -sk "https://127.0.0.1:$(cat "$STATE/ports/$1")/healthz")" = ok ]
}

nodes_ready() {
  [ "$(api GET /api/v1/nodes | jq '[.items[] | select(.status.conditions // [] | any(.type == "Ready" and .status == "True"))] | length')" -ge "$TESTENV_NODES" ]
}

# Each control plane's kwok pods take their addresses from a /20 of 198.18.0.0/15 of its own
# (node i: the slot's i-th /24), so two control planes on one machine never hand out the same
# pod IP: fake or real members at one's pod IPs answered the other's operator. A slot is claimed
# with an atomic mkdir under /run/lock/iop-podnet; one whose control plane's apiserver is gone is
# free again. Slots 1 to 30: the first /20 is what control planes of checkouts before this one
# use, and the last (198.19.240.0/20) holds the real-MySQL tier's host address, 198.19.255.254.
POD_SLOTS=30
POD_SLOT_DIR=/run/lock/iop-podnet

# claim_pod_slot DIR: prints the slot claimed for the control plane in DIR.
claim_pod_slot() {
  local d=$1 s owner pid i start=$((RANDOM % POD_SLOTS))
  mkdir -p "$POD_SLOT_DIR"
  for i in $(seq 0 $((POD_SLOTS - 1))); do
    s=$((1 + (start + i) % POD_SLOTS))
    if mkdir "$POD_SLOT_DIR/$s" 2>/dev/null; then
      echo "$d" > "$POD_SLOT_DIR/$s/owner"
      echo "$s"
      return
    fi
    owner=$(cat "$POD_SLOT_DIR/$s/owner" 2>/dev/null || true)
    # No owner yet: being claimed right now.
    [ -n "$owner" ] || continue
    pid=$(cat "$owner/pids/kube-apiserver.pid" 2>/dev/null || true)
    if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
      # Stale: free it and race for it like any other free slot.
      rm -rf "$POD_SLOT_DIR/$s"
      if mkdir "$POD_SLOT_DIR/$s" 2>/dev/null; then
        echo "$d" > "$POD_SLOT_DIR/$s/owner"
        echo "$s"
        return
      fi
    fi
  done
  die "every pod address range is taken ($POD_SLOTS control planes running?)"
}

# release_pod_slot DIR: frees the slot of the control plane in DIR, if it still holds one.
release_pod_slot() {
  local d=$1 s
  [ -f "$d/pod-slot" ] || return 0
  s=$(cat "$d/pod-slot")
  [ "$(cat "$POD_SLOT_DIR/$s/owner" 2>/dev/null || true)" != "$d" ] || rm -rf "${POD_SLOT_DIR:?}/$s"
  rm -f "$d/pod-slot"
}

# node_cidr SLOT I: the /24 of node I in SLOT.
node_cidr() {
  local index=$(($1 * 16 + $2))
  echo "198.$((18 + index / 256)).$((index % 256)).0/24"
}

create_nodes() {
  local i slot cidr
  [ "$TESTENV_NODES" -le 16 ] || die "at most 16 kwok nodes (a pod address range holds 16 /24s)"
  slot=$(claim_pod_slot "$STATE")
  echo "$slot" > "$STATE/pod-slot"
  for i in $(seq 0 $((TESTENV_NODES - 1))); do
    cidr=$(node_cidr "$slot" "$i")
    api POST /api/v1/nodes "$(jq -cn --arg n "kwok-node-$i" --arg z "zone-$((i % 3))" --arg c "$cidr" \
      --argjson taints "${KWOK_TAINTS:-[]}" '{
      apiVersion: "v1", kind: "Node",
      metadata: {name: $n,
        annotations: {"kwok.x-k8s.io/node": "fake"},
        labels: {"type": "kwok", "kubernetes.io/hostname": $n, "kubernetes.io/os": "linux",
                 "kubernetes.io/arch": "amd64", "topology.kubernetes.io/zone": $z}},
      spec: {podCIDR: $c, podCIDRs: [$c], taints: $taints},
      status: {capacity: {cpu: "512", memory: "4Ti", pods: "1000", "ephemeral-storage": "100Ti"}}}')" > /dev/null
  done
}

create_storage_class() {
  api POST /apis/storage.k8s.io/v1/storageclasses '{"apiVersion":"storage.k8s.io/v1","kind":"StorageClass",
    "metadata":{"name":"standard","annotations":{"storageclass.kubernetes.io/is-default-class":"true"}},
    "provisioner":"testenv.innodb-operator.io/kwok","volumeBindingMode":"Immediate",
    "reclaimPolicy":"Delete","allowVolumeExpansion":true}' > /dev/null
}

write_audit_policy() {
  cat > "$1/audit-policy.yaml" <<'POLICY'
# Every write (who, what, which object) at Metadata level; reads are not recorded.
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  verbs: [create, update, patch, delete, deletecollection]
- level: None
POLICY
}

# cmd_up [DIR] [--node]: with --node (or TESTENV_NODE=1) a real node runs the pods instead of
# kwok's fake nodes (TESTENV_NODES defaults to 0 then).
cmd_up() {
  local d node="${TESTENV_NODE:-0}"
  if [ "${1:-}" = --node ]; then node=1; shift; fi
  if [ "${2:-}" = --node ]; then node=1; fi
  d="$(state_dir "${1:-}")"
  STATE=$d
  if [ "$node" = 1 ]; then
    TESTENV_NODES=${TESTENV_NODES_SET:-0}
    API_HOST=$NODE_IP
  fi
  if [ -d "$d/pids" ] && ls "$d"/pids/*.pid > /dev/null 2>&1; then
    for f in "$d"/pids/*.pid; do
      kill -0 "$(cat "$f")" 2>/dev/null && die "a control plane is already running in $d; run: $0 down $d"
    done
  fi
  for tool in curl openssl jq setsid; do
    command -v "$tool" > /dev/null || die "$tool is missing: run e2e/lib/install-testenv.sh"
  done
  for b in etcd kube-apiserver kube-controller-manager kube-scheduler kwok; do
    [ -x "$TESTENV_BIN/$b" ] || die "$TESTENV_BIN/$b is missing: run $0 build"
  done
  [ "$node" = 0 ] || node_check_tools
  local start=$SECONDS
  [ "$node" = 0 ] || node_claim "$d"
  rm -rf "$d"
  mkdir -p "$d/logs" "$d/pids" "$d/ports"
  # A start that fails half way stops what it started, so that trying again in the same
  # directory works, and shows every component's last lines (the failing one may be a symptom).
  trap 'up_failed "$STATE"' EXIT
  if [ "$node" = 1 ]; then
    node_net_up "$d"
    pki "$d/pki" "$NODE_IP"
  else
    pki "$d/pki"
  fi
  write_audit_policy "$d"
  local ports
  read -r -a ports <<< "$(free_ports 6)"
  local names=(etcd etcd-peer apiserver controller-manager scheduler kwok)
  for i in "${!names[@]}"; do echo "${ports[$i]}" > "$d/ports/${names[$i]}"; done
  local etcd_port=${ports[0]} peer_port=${ports[1]} api_port=${ports[2]}

  start "$d" etcd --name=testenv --data-dir="$d/etcd" \
    --listen-client-urls="http://127.0.0.1:$etcd_port" --advertise-client-urls="http://127.0.0.1:$etcd_port" \
    --listen-peer-urls="http://127.0.0.1:$peer_port" --initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
    --initial-cluster="testenv=http://127.0.0.1:$peer_port" --unsafe-no-fsync --log-level=warn
  wait_for "$d" etcd 30 curl -sf "http://127.0.0.1:$etcd_port/health"

  # With a real node the apiserver binds the node's address (pods reach it through the
  # `kubernetes` Service, whose endpoint the lease reconciler keeps) and logs into kubelets.
  local node_flags=(--endpoint-reconciler-type=none)
  [ "$node" = 0 ] || node_flags=(--endpoint-reconciler-type=lease
    --kubelet-client-certificate="$d/pki/apiserver-kubelet-client.crt"
    --kubelet-client-key="$d/pki/apiserver-kubelet-client.key"
    --kubelet-certificate-authority="$d/pki/ca.crt" --kubelet-preferred-address-types=InternalIP)
  start "$d" kube-apiserver --etcd-servers="http://127.0.0.1:$etcd_port" \
    --bind-address="$API_HOST" --advertise-address="$API_HOST" --secure-port="$api_port" "${node_flags[@]}" \
    --tls-cert-file="$d/pki/apiserver.crt" --tls-private-key-file="$d/pki/apiserver.key" \
    --client-ca-file="$d/pki/ca.crt" --authorization-mode=Node,RBAC \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$d/pki/sa.pub" --service-account-signing-key-file="$d/pki/sa.key" \
    --api-audiences=https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range=10.0.0.0/16 --allow-privileged=true \
    --audit-policy-file="$d/audit-policy.yaml" --audit-log-path="$d/audit.log" --audit-log-format=json \
    --audit-log-mode=blocking --profiling=false --cert-dir="$d/pki"
  write_kubeconfig "$d/kubeconfig" "$d" "$api_port"
  [ "$node" = 0 ] || { mkdir -p "$d/node"; write_kubeconfig "$d/node/kubeconfig-kubelet" "$d" "$api_port" kubelet; }
  wait_for "$d" kube-apiserver 60 api GET /readyz

  start "$d" kube-controller-manager --kubeconfig="$d/kubeconfig" \
    --authentication-kubeconfig="$d/kubeconfig" --authorization-kubeconfig="$d/kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="${ports[3]}" --cert-dir="$d/pki/kcm" --leader-elect=false \
    --root-ca-file="$d/pki/ca.crt" --service-account-private-key-file="$d/pki/sa.key" \
    --use-service-account-credentials=false
  start "$d" kube-scheduler --kubeconfig="$d/kubeconfig" \
    --authentication-kubeconfig="$d/kubeconfig" --authorization-kubeconfig="$d/kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="${ports[4]}" --cert-dir="$d/pki/scheduler" --leader-elect=false
  if [ "$TESTENV_NODES" -gt 0 ]; then
    start "$d" kwok --kubeconfig="$d/kubeconfig" --config="$here/kwok-stages.yaml" \
      --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
      --server-address="127.0.0.1:${ports[5]}" --node-lease-duration-seconds=40
    # With a real node beside them, fake nodes take only pods that tolerate their taint.
    [ "$node" = 0 ] || KWOK_TAINTS='[{"key":"kwok.x-k8s.io/node","value":"fake","effect":"NoSchedule"}]'
    [ "$node" = 1 ] || create_storage_class
    create_nodes
  fi
  wait_for "$d" kube-controller-manager 60 healthz controller-manager
  wait_for "$d" kube-scheduler 60 healthz scheduler
  [ "$TESTENV_NODES" = 0 ] || wait_for "$d" kwok 60 nodes_ready
  # The service-account controller made the default ServiceAccount: the controllers are working.
  wait_for "$d" kube-controller-manager 60 api GET /api/v1/namespaces/default/serviceaccounts/default
  [ "$node" = 0 ] || node_up "$d"
  if [ -n "${TESTENV_OWNER_PID:-}" ]; then
    # Stop everything when the process that asked for this control plane goes away, however it
    # ends (a test binary that panics or is killed included), and remove its state unless
    # TESTENV_KEEP=1 asks to keep the logs.
    setsid bash -c 'echo $$ > "$4"; while kill -0 "$1" 2>/dev/null; do sleep 1; done
      "$2" down "$3"; [ "${TESTENV_KEEP:-0}" = 1 ] || rm -rf "$3"' \
      watchdog "$TESTENV_OWNER_PID" "$here/testenv.sh" "$d" "$d/watchdog.pid" \
      > "$d/logs/watchdog.log" 2>&1 < /dev/null &
  fi
  trap - EXIT
  log "control plane up in $d ($((SECONDS - start))s)"
  cmd_env "$d"
}

# stop_all DIR NAME...: SIGTERM to each, then up to 10 s for all of them, then SIGKILL.
stop_all() {
  local d=$1 name pid pids=() names=()
  shift
  for name in "$@"; do
    [ -f "$d/pids/$name.pid" ] || continue
    pid=$(cat "$d/pids/$name.pid")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
      names+=("$name")
    fi
  done
  local i left
  for _ in $(seq 1 100); do
    left=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && left=1; done
    [ "$left" = 0 ] && break
    sleep 0.1
  done
  for i in "${!pids[@]}"; do
    if kill -0 "${pids[$i]}" 2>/dev/null; then
      log "${names[$i]} did not stop on SIGTERM within 10s; killing it"
      kill -KILL "${pids[$i]}" 2>/dev/null || true
    fi
  done
  for name in "$@"; do rm -f "$d/pids/$name.pid"; done
}

# up_failed DIR: the EXIT trap of a failed `up`.
up_failed() {
  local d=$1 f
  for f in "$d"/logs/*.log; do
    [ -s "$f" ] || continue
    log "last lines of $f:"
    tail -n 8 "$f" >&2 || true
  done
  cmd_down "$d" >&2 || true
  log "error: the control plane did not start: ${DIED:-see above}"
}

cmd_down() {
  local d pid
  d="$(state_dir "${1:-}")"
  [ -d "$d/pids" ] || return 0
  # The node first (its pods need containerd to be stopped cleanly), then the clients of the
  # apiserver, then the apiserver, etcd last.
  node_down "$d"
  stop_all "$d" kwok kube-scheduler kube-controller-manager
  stop_all "$d" kube-apiserver
  stop_all "$d" etcd
  release_pod_slot "$d"
  node_net_down "$d"
  if [ -f "$d/watchdog.pid" ]; then
    pid=$(cat "$d/watchdog.pid")
    rm -f "$d/watchdog.pid"
    # The watchdog runs `down` itself: it must not kill itself before it cleans up.
    [ "$pid" != "$PPID" ] && kill "$pid" 2>/dev/null || true
  fi
  log "control plane in $d stopped"
}

cmd_env() {
  local d
  d="$(state_dir "${1:-}")"
  [ -f "$d/kubeconfig" ] || die "no control plane in $d"
  echo "export KUBECONFIG=$d/kubeconfig"
  echo "export TESTENV_DIR=$d"
  echo "export TESTENV_AUDIT_LOG=$d/audit.log"
  echo "export PATH=$TESTENV_BIN:\$PATH"
}

case "${1:-}" in
  build) cmd_build ;;
  build-node) cmd_build && node_build ;;
  node-restart) node_restart "$(state_dir "${2:-}")" ;;
  up) shift; cmd_up "$@" ;;
  down) cmd_down "${2:-}" ;;
  env) cmd_env "${2:-}" ;;
  bin) echo "$TESTENV_BIN" ;;
  *) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
