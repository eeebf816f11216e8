# The real node of the test environment, sourced by testenv.sh: kubelet, containerd and runc
# running real pods on this machine, the bridge CNI plugin, kube-proxy (iptables) and CoreDNS.
# Functions here use testenv.sh's helpers (build_go, build_kube, start, wait_for, api, ...).

NODE_NAME="${NODE_NAME:-iop-node-0}"
# Addresses (none may meet the machine's own networks; checked by node_check_addresses):
# the node's address on an interface of its own (the apiserver binds it, pods reach it), the pods'
# bridge and subnet, and the Services' range (testenv.sh's --service-cluster-ip-range).
NODE_IF=iop-node0
NODE_IP=10.250.0.1
POD_BRIDGE=iop-cni0
POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.0.0.0/16
CLUSTER_DNS=10.0.0.10
CLUSTER_DOMAIN=cluster.local
# Where containerd keeps its images between runs (imports are skipped when already present).
NODE_CONTAINERD_ROOT="$IOP_CACHE/node/containerd"
# Static local volumes of the `standard` StorageClass live here (one directory per volume).
NODE_VOLUMES="$IOP_CACHE/node/volumes"
NODE_LOCK=/run/lock/iop-node.lock

# ---------------------------------------------------------------------------------------------
# build

node_build() {
  if ! have kubelet "$KUBE_VERSION" || ! have kube-proxy "$KUBE_VERSION" || ! have kubectl "$KUBE_VERSION"; then
    # kubectl of the same release: exec, logs and port-forward against the real node.
    log "building kubelet, kube-proxy, kubectl $KUBE_VERSION"
    build_kube kubelet kube-proxy kubectl
  fi
  local b
  for b in containerd containerd-shim-runc-v2 ctr; do
    if ! have "$b" "$CONTAINERD_VERSION"; then
      log "building $b $CONTAINERD_VERSION"
      build_go "$b" "github.com/containerd/containerd/v2/cmd/$b" "$CONTAINERD_VERSION" \
        "-X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION"
      built "$b" "$CONTAINERD_VERSION"
    fi
  done
  if ! have runc "$RUNC_VERSION"; then
    # runc filters system calls with libseccomp (cgo): the RuntimeDefault profile pods ask for.
    log "building runc $RUNC_VERSION (cgo, seccomp)"
    CGO_ENABLED=1 build_go runc github.com/opencontainers/runc "$RUNC_VERSION" \
      "-X main.version=${RUNC_VERSION#v}" -tags seccomp
    built runc "$RUNC_VERSION"
  fi
  if ! have coredns "$COREDNS_VERSION"; then
    log "building coredns $COREDNS_VERSION"
    build_go coredns github.com/coredns/coredns "$COREDNS_VERSION"
    built coredns "$COREDNS_VERSION"
  fi
  if ! have pause "$KUBE_VERSION"; then
    # The sandbox's process: Kubernetes' own pause.c from the release's module, linked statically.
    local src
    src="$("$GO" env GOMODCACHE)/k8s.io/kubernetes@$KUBE_VERSION/build/pause/linux/pause.c"
    [ -f "$src" ] || die "$src is missing (the kubernetes module of build_kube)"
    log "building pause from $src"
    gcc -Os -Wall -Werror -static -DVERSION="$KUBE_VERSION" -o "$TESTENV_BIN/pause" "$src"
    strip "$TESTENV_BIN/pause"
    built pause "$KUBE_VERSION"
  fi
  if ! have crictl "$CRICTL_VERSION"; then
    # Stops and removes pod sandboxes through the CRI at `down`, so the CNI plugins release
    # their addresses and rules; also the tool to look at pods on the node.
    log "building crictl $CRICTL_VERSION"
    build_go crictl sigs.k8s.io/cri-tools/cmd/crictl "$CRICTL_VERSION"
    built crictl "$CRICTL_VERSION"
  fi
}

# ---------------------------------------------------------------------------------------------
# up

# node_claim DIR: one real node per machine (fixed addresses, one kubelet port); a stale claim
# (its directory's containerd is gone) is taken over.
node_claim() {
  local d=$1 owner
  if [ -f "$NODE_LOCK" ]; then
    owner=$(cat "$NODE_LOCK")
    if [ "$owner" != "$d" ] && running "$owner" containerd; then
      die "a real node is already running from $owner: run $0 down $owner"
    fi
    [ "$owner" = "$d" ] || { node_down "$owner"; node_net_down "$owner"; } 2>/dev/null || true
  fi
  echo "$d" > "$NODE_LOCK"
}

# node_check_tools: what the node needs from Debian and from `build-node`.
node_check_tools() {
  local t
  for t in iptables ip nsenter gcc; do
    command -v "$t" > /dev/null || die "$t is missing: run e2e/lib/install-testenv.sh --node"
  done
  [ -x /usr/lib/cni/bridge ] || die "the CNI plugins are missing: run e2e/lib/install-testenv.sh --node"
  for t in kubelet kube-proxy containerd containerd-shim-runc-v2 ctr runc coredns crictl pause; do
    [ -x "$TESTENV_BIN/$t" ] || die "$TESTENV_BIN/$t is missing: run $0 build-node"
  done
}

# node_net_up DIR: the node's address on an interface of its own, before the apiserver binds it, and
# the forwarding the pods' traffic needs (the previous values are restored by node_down).
node_net_up() {
  local d=$1
  mkdir -p "$d/node"
  if ip -o addr show | grep -q " $NODE_IP/"; then
    ip -o addr show dev "$NODE_IF" 2>/dev/null | grep -q " $NODE_IP/" ||
      die "$NODE_IP is already used by another interface: $(ip -o addr show | grep " $NODE_IP/")"
  else
    ip route get "${POD_CIDR%/*}" 2>/dev/null | grep -q "dev $POD_BRIDGE" ||
      ! ip route show "$POD_CIDR" | grep -q . || die "$POD_CIDR is already routed: $(ip route show "$POD_CIDR")"
    # A bridge without ports holds the address (this machine's kernel has no dummy driver).
    ip link add "$NODE_IF" type bridge 2>/dev/null || true
    ip addr add "$NODE_IP/32" dev "$NODE_IF"
    ip link set "$NODE_IF" up
  fi
  local k
  for k in net/ipv4/ip_forward net/bridge/bridge-nf-call-iptables; do
    [ -f "$d/node/sysctl.${k//\//.}" ] || cat "/proc/sys/$k" > "$d/node/sysctl.${k//\//.}"
    echo 1 > "/proc/sys/$k"
  done
}

node_containerd_config() {
  local d=$1
  cat > "$d/node/containerd.toml" <<TOML
version = 3
root = "$NODE_CONTAINERD_ROOT"
state = "$d/node/containerd-state"
[grpc]
  address = "$d/node/containerd.sock"
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "$NODE_PAUSE_IMAGE"
[plugins.'io.containerd.cri.v1.runtime']
  enable_selinux = false
  # This machine withholds CAP_SYS_RESOURCE: no process may lower its oom_score_adj, so the
  # negative scores kubelet asks for (-998 for sandboxes) would make runc fail; containers get
  # at least containerd's own score instead.
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "$TESTENV_BIN/runc"
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "$d/node/cni"
[plugins.'io.containerd.grpc.v1.cri']
  # Network namespaces under the state directory, where node_down finds every one.
  netns_mounts_under_state_dir = true
TOML
  mkdir -p "$d/node/cni"
  cat > "$d/node/cni/10-iop.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "iop-pods",
  "plugins": [
    {"type": "bridge", "bridge": "$POD_BRIDGE", "isGateway": true, "ipMasq": true,
     "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "$d/node/cni-ipam",
              "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
}

node_kubelet_config() {
  local d=$1
  cat > "$d/node/resolv.conf" <<EOT
nameserver $CLUSTER_DNS
EOT
  cat > "$d/node/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine has cgroup v1 hierarchies only; kubelet 1.35+ refuses them unless told.
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$d/node/containerd.sock
address: $NODE_IP
port: $NODE_KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $NODE_KUBELET_HEALTHZ_PORT
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $d/pki/ca.crt}
authorization: {mode: Webhook}
clusterDNS: [$CLUSTER_DNS]
clusterDomain: $CLUSTER_DOMAIN
resolvConf: $d/node/resolv.conf
failSwapOn: false
# The machine's disk is shared with everything else (and may be capped well below its size):
# evict only when it is really full.
evictionHard: {memory.available: "200Mi", nodefs.available: "512Mi", imagefs.available: "512Mi", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
rotateCertificates: false
tlsCertFile: $d/pki/kubelet-serving.crt
tlsPrivateKeyFile: $d/pki/kubelet-serving.key
# Pod status changes reach the API server sooner than the default 10 s node status cycle.
nodeStatusUpdateFrequency: 4s
syncFrequency: 10s
YAML
}

node_kube_proxy_config() {
  local d=$1
  cat > "$d/node/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $d/kubeconfig}
hostnameOverride: $NODE_NAME
mode: iptables
clusterCIDR: $POD_CIDR
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:$NODE_PROXY_HEALTHZ_PORT
metricsBindAddress: 127.0.0.1:$NODE_PROXY_METRICS_PORT
# Leave the machine's conntrack table size alone.
conntrack: {maxPerCore: 0}
YAML
}

node_corefile() {
  local d=$1
  cat > "$d/node/Corefile" <<COREFILE
.:53 {
    bind $NODE_IP
    errors
    kubernetes $CLUSTER_DOMAIN in-addr.arpa ip6.arpa {
        kubeconfig $d/kubeconfig
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }
    forward . /etc/resolv.conf
}
COREFILE
}

# node_images: the image archives the node imports at start (built by e2e/lib/build-images.sh).
NODE_IMAGES="$IOP_CACHE/node/images"
NODE_PAUSE_IMAGE="iop/pause:$KUBE_VERSION"

ctr_k8s() { "$TESTENV_BIN/ctr" --address "$STATE/node/containerd.sock" -n k8s.io "$@"; }
crictl_node() {
  "$TESTENV_BIN/crictl" --runtime-endpoint "unix://$STATE/node/containerd.sock" --timeout 30s "$@"
}

node_ready() {
  api GET "/api/v1/nodes/$NODE_NAME" |
    jq -e '.status.conditions // [] | any(.type == "Ready" and .status == "True")' > /dev/null
}


# node_up DIR: containerd, the images, kubelet, kube-proxy, CoreDNS, the `standard` volumes.
node_up() {
  local d=$1
  local ports
  read -r -a ports <<< "$(free_ports 3)"
  NODE_KUBELET_PORT=10250
  NODE_KUBELET_HEALTHZ_PORT=${ports[0]}
  NODE_PROXY_HEALTHZ_PORT=${ports[1]}
  NODE_PROXY_METRICS_PORT=${ports[2]}
  mkdir -p "$NODE_CONTAINERD_ROOT" "$d/node/volumes"

  echo "$NODE_KUBELET_HEALTHZ_PORT" > "$d/ports/kubelet-healthz"
  node_containerd_config "$d"
  node_start_containerd "$d"
  local archive
  for archive in "$NODE_IMAGES"/*.tar; do
    [ -f "$archive" ] || die "no image archives in $NODE_IMAGES: run e2e/lib/build-images.sh"
    ctr_k8s images import --local --snapshotter overlayfs "$archive" > /dev/null ||
      die "containerd could not import $archive"
  done

  node_kubelet_config "$d"
  node_start_kubelet "$d"
  wait_for "$d" kubelet 90 node_ready

  node_kube_proxy_config "$d"
  start "$d" kube-proxy --config="$d/node/kube-proxy.yaml"
  wait_for "$d" kube-proxy 30 curl -sf "http://127.0.0.1:$NODE_PROXY_HEALTHZ_PORT/healthz"

  node_corefile "$d"
  start "$d" coredns -conf "$d/node/Corefile"
  node_dns_service
  wait_for "$d" coredns 30 node_dns_answers

  node_volumes "$d"
}

node_start_containerd() {
  local d=$1
  PATH="$TESTENV_BIN:$PATH" start "$d" containerd --config "$d/node/containerd.toml" --log-level warn
  wait_for "$d" containerd 30 ctr_k8s version
}

node_start_kubelet() {
  local d=$1
  start "$d" kubelet --config="$d/node/kubelet.yaml" --kubeconfig="$d/node/kubeconfig-kubelet" \
    --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" --root-dir="$d/node/kubelet" \
    --cert-dir="$d/node/kubelet-pki" --v=1
  wait_for "$d" kubelet 60 curl -sf "http://127.0.0.1:$(cat "$d/ports/kubelet-healthz")/healthz"
}

# node_restart DIR: the node goes down hard and comes back, as after a power cut: kubelet,
# containerd, the shims and every container's processes are killed at once (SIGKILL), the
# containers' mounts and network namespaces go, then containerd and kubelet start again with
# their state on disk and kubelet starts every pod's containers anew.
node_restart() {
  local d=$1
  STATE=$d
  [ -d "$d/node" ] || die "no node in $d"
  local pids t0=$SECONDS
  pids=$(cat "$d/pids/kubelet.pid" "$d/pids/containerd.pid" 2>/dev/null || true)
  pids+=" $(pgrep -f "containerd-shim-runc-v2 .*-address $d/node/containerd.sock" || true)"
  pids+=" $(node_container_pids)"
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null || true
  sleep 0.5
  node_unmount "$d"
  node_start_containerd "$d"
  node_start_kubelet "$d"
  log "node $NODE_NAME restarted: kubelet answers $((SECONDS - t0))s after the cut"
}

# node_container_pids: every process in the pods' cgroups.
node_container_pids() {
  local sub
  for sub in /sys/fs/cgroup/*/kubepods; do
    [ -d "$sub" ] && find "$sub" -name cgroup.procs -exec cat {} + 2>/dev/null
  done | sort -u
}

# node_unmount DIR: the mounts of the pods and containers (volumes, root filesystems, network
# namespaces), deepest first.
node_unmount() {
  local d=$1 root
  for root in "$d/node/" "$NODE_CONTAINERD_ROOT/"; do
    awk -v r="$root" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r |
      while read -r m; do umount -l "$m" 2>/dev/null || true; done
  done
}

# The cluster DNS Service: CoreDNS runs on the node itself, so the Service has no selector and
# one EndpointSlice naming the node's address.
node_dns_service() {
  api POST /api/v1/namespaces/kube-system/services "$(jq -cn --arg ip "$CLUSTER_DNS" '{
    apiVersion: "v1", kind: "Service",
    metadata: {name: "kube-dns", labels: {"k8s-app": "kube-dns"}},
    spec: {clusterIP: $ip, ports: [{name: "dns", port: 53, protocol: "UDP"},
                                   {name: "dns-tcp", port: 53, protocol: "TCP"}]}}')" > /dev/null
  api POST /apis/discovery.k8s.io/v1/namespaces/kube-system/endpointslices "$(jq -cn --arg ip "$NODE_IP" --arg n "$NODE_NAME" '{
    apiVersion: "discovery.k8s.io/v1", kind: "EndpointSlice",
    metadata: {name: "kube-dns-node", labels: {"kubernetes.io/service-name": "kube-dns",
      "endpointslice.kubernetes.io/managed-by": "testenv.innodb-operator.io"}},
    addressType: "IPv4",
    endpoints: [{addresses: [$ip], conditions: {ready: true}, nodeName: $n}],
    ports: [{name: "dns", port: 53, protocol: "UDP"}, {name: "dns-tcp", port: 53, protocol: "TCP"}]}')" > /dev/null
}

# node_dns_answers: CoreDNS answers for the API server's Service through the cluster DNS address
# (kube-proxy's rules included).
node_dns_answers() {
  [ "$(dig +short +time=1 +tries=1 "@$CLUSTER_DNS" "kubernetes.default.svc.$CLUSTER_DOMAIN" A)" = 10.0.0.1 ]
}

# node_volumes DIR: the `standard` StorageClass, with static local volumes (directories under
# DIR) bound when a pod first uses its claim; local volumes, unlike hostPath ones, take the pod's
# fsGroup, so non-root members can write them.
node_volumes() {
  local d=$1 i
  api POST /apis/storage.k8s.io/v1/storageclasses '{"apiVersion":"storage.k8s.io/v1","kind":"StorageClass",
    "metadata":{"name":"standard","annotations":{"storageclass.kubernetes.io/is-default-class":"true"}},
    "provisioner":"kubernetes.io/no-provisioner","volumeBindingMode":"WaitForFirstConsumer",
    "reclaimPolicy":"Retain"}' > /dev/null
  for i in $(seq -w 0 $((NODE_VOLUME_COUNT - 1))); do
    mkdir -p "$d/node/volumes/pv-$i"
    api POST /api/v1/persistentvolumes "$(jq -cn --arg n "pv-$i" --arg p "$d/node/volumes/pv-$i" --arg node "$NODE_NAME" --arg size "$NODE_VOLUME_SIZE" '{
      apiVersion: "v1", kind: "PersistentVolume",
      metadata: {name: $n, labels: {"testenv.innodb-operator.io/volume": "local"}},
      spec: {capacity: {storage: $size}, accessModes: ["ReadWriteOnce"],
        persistentVolumeReclaimPolicy: "Retain", storageClassName: "standard",
        volumeMode: "Filesystem", local: {path: $p},
        nodeAffinity: {required: {nodeSelectorTerms: [{matchExpressions: [
          {key: "kubernetes.io/hostname", operator: "In", values: [$node]}]}]}}}}')" > /dev/null
  done
}
NODE_VOLUME_COUNT="${NODE_VOLUME_COUNT:-24}"
NODE_VOLUME_SIZE="${NODE_VOLUME_SIZE:-100Gi}"

# ---------------------------------------------------------------------------------------------
# down

# node_down DIR: everything node_up and the pods made goes: pods (through the CRI, so the CNI
# plugins release addresses and rules), containerd and its shims, mounts, network namespaces,
# the pods' bridge, the iptables rules of kubelet, kube-proxy and CNI, cgroups (node_net_down
# does the rest).
node_down() {
  local d=$1 pid
  [ -d "$d/node" ] || return 0
  STATE=$d
  stop_all "$d" kubelet kube-proxy coredns
  if running "$d" containerd; then
    crictl_node rmp --all --force > /dev/null 2>&1 || log "crictl rmp failed; killing containers"
  fi
  # Shims outlive containerd; each is a child of init whose command line names our socket.
  local shims
  shims=$(pgrep -f "containerd-shim-runc-v2 .*-address $d/node/containerd.sock" || true)
  stop_all "$d" containerd
  for pid in $shims; do
    pkill -KILL -P "$pid" 2>/dev/null || true
    kill -KILL "$pid" 2>/dev/null || true
  done
  # Containers' processes are in the kubepods cgroups: kill what is left there, then remove them.
  node_container_pids | xargs -r kill -KILL 2>/dev/null || true
  sleep 0.2
  node_unmount "$d"
  local sub
  for sub in /sys/fs/cgroup/*/kubepods; do
    [ -d "$sub" ] || continue
    find "$sub" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  if ip link show "$POD_BRIDGE" > /dev/null 2>&1; then ip link del "$POD_BRIDGE"; fi
  [ -x "$TESTENV_BIN/kube-proxy" ] && "$TESTENV_BIN/kube-proxy" --cleanup > /dev/null 2>&1 || true
  node_iptables_cleanup
  log "node $NODE_NAME in $d stopped"
}

# node_net_down DIR: the node's address and the forwarding settings, once the apiserver, which
# binds that address, has stopped.
node_net_down() {
  local d=$1 f k
  [ -d "$d/node" ] || return 0
  if ip link show "$NODE_IF" > /dev/null 2>&1; then ip link del "$NODE_IF"; fi
  for f in "$d"/node/sysctl.*; do
    [ -f "$f" ] || continue
    k=${f##*/sysctl.}
    cat "$f" > "/proc/sys/${k//.//}"
    rm -f "$f"
  done
  [ "$(cat "$NODE_LOCK" 2>/dev/null)" != "$d" ] || rm -f "$NODE_LOCK"
}

# node_iptables_cleanup: the rules kubelet (KUBE-FIREWALL, canaries), kube-proxy and the bridge
# plugin (CNI-*, for pods whose teardown never ran) leave in every table of both iptables
# back ends, IPv4 and IPv6: rules of the built-in chains that jump to them, then the chains.
node_iptables_cleanup() {
  local tool table chains c
  for tool in iptables ip6tables iptables-legacy ip6tables-legacy; do
    command -v "$tool" > /dev/null || continue
    for table in filter nat mangle raw; do
      chains=$("$tool" -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^(KUBE|CNI)-/ { print $2 }')
      [ -n "$chains" ] || continue
      "$tool" -t "$table" -S 2>/dev/null | awk '$1 == "-A" && $2 !~ /^(KUBE|CNI)-/ && / -j (KUBE|CNI)-/' |
        sed 's/^-A/-D/' | while read -r rule; do eval "$tool -t $table $rule" 2>/dev/null || true; done
      for c in $chains; do "$tool" -t "$table" -F "$c" 2>/dev/null || true; done
      for c in $chains; do "$tool" -t "$table" -X "$c" 2>/dev/null || true; done
    done
  done
}
