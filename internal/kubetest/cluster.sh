#!/usr/bin/env bash
# cluster.sh: one real single-node Kubernetes cluster for Tandem's kube tests (internal/kubetest).
# etcd + kube-apiserver + kube-controller-manager + kube-scheduler + a real kubelet with containerd, runc and a
# CNI bridge (Debian packages). No Docker, no downloaded binaries: the Kubernetes binaries are built from the Go
# module proxy into a cache directory that survives runs (.ci/run reuses it).
#
#   cluster.sh build   build what is missing into $TANDEM_K8S_DIR/bin (a cold build takes 15-60 min on 2 cores)
#   cluster.sh up      start the cluster; prints KUBECONFIG=... on its last line
#   cluster.sh down    stop it and remove its runtime state (the cache stays)
#
# Env: TANDEM_K8S_DIR (/var/cache/tandem-k8s), K8S_VERSION (v1.37.1), ETCD_VERSION (v3.6.16).
# Facts this script rests on (measured on these machines, see docs/kube.md "Tests on a real cluster"):
#  - pin every `go get` to the version: a bare one takes a newer k8s.io/kubernetes against older staging modules;
#  - kubelet >= 1.35 needs failCgroupV1: false on a cgroup v1 host; cgroupDriver cgroupfs <-> SystemdCgroup=false;
#  - the machine lacks CAP_SYS_RESOURCE: containerd restrict_oom_score_adj = true and kubelet oomScoreAdj: 0;
#  - kubelet writes global sysctls: containerd and kubelet share a private mount namespace in which those
#    /proc/sys files are bind-mounted plain files;
#  - kubelet refuses a loopback node IP: the node IP is the gateway of our own bridge (rk8s0, 10.244.0.1/24),
#    which the host reaches pods over (no kube-proxy, no iptables rules);
#  - no registry: images are imported with ctr, pods use imagePullPolicy: Never, the sandbox image is
#    localhost/tandemk8s/pause:3.10 (internal/kubetest imports it);
#  - kube-apiserver --kubelet-preferred-address-types=InternalIP; it listens on the bridge's address (not on
#    loopback), the one place both the host and pods reach without kube-proxy;
#    kube-controller-manager --root-ca-file (else no kube-root-ca.crt and pods stay ContainerCreating);
#  - teardown: kubelet, then the sandboxes, then containerd, shims, mounts, bridge, control plane.
set -euo pipefail

WORK=${TANDEM_K8S_DIR:-/var/cache/tandem-k8s}
K8S_VERSION=${K8S_VERSION:-v1.37.1}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
BIN=$WORK/bin RUN=$WORK/kubetest/run NODE=$WORK/kubetest/node
CSTATE=/run/tandemk8s SOCK=/run/tandemk8s/containerd.sock MNTNS=/run/tandemk8s/mntns
BRIDGE=rk8s0 POD_SUBNET=10.244.0.0/24 NODE_IP=10.244.0.1 NODE_NAME=tandemk8s-node

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

build() {
  mkdir -p "$WORK/k8s" "$WORK/etcd" "$BIN"
  if ! dpkg -s containerd runc containernetworking-plugins >/dev/null 2>&1; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y containerd runc containernetworking-plugins >/dev/null
  fi
  export GOFLAGS=-mod=mod CGO_ENABLED=0
  if [ ! -x "$BIN/kubelet" ] || [ ! -x "$BIN/kube-apiserver" ] || [ ! -x "$BIN/kube-controller-manager" ] || [ ! -x "$BIN/kube-scheduler" ]; then
    local staging="v0.${K8S_VERSION#v1.}" minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
    local proxy; proxy=$(go env GOPROXY); proxy=${proxy%%,*}
    ( cd "$WORK/k8s"
      local modf; modf=$(curl -fsS "$proxy/k8s.io/kubernetes/@v/$K8S_VERSION.mod")
      { printf 'module k8sbuild\n\ngo %s\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$(awk '$1=="go"{print $2}' <<<"$modf")" "$K8S_VERSION"
        awk -v v="$staging" '$2=="=>" && $3 ~ /^\.\/staging\/src\// {printf "\t%s => %s %s\n", $1, $1, v}' <<<"$modf"
        echo ")"; } > go.mod
      rm -f go.sum
      local pkgs="k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet"
      go get $(for p in $pkgs; do echo "$p@$K8S_VERSION"; done)
      local ld="-s -w" p
      for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ld="$ld -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"; done
      nice -n 19 go build -ldflags "$ld" -o "$BIN/" $pkgs )
  fi
  if [ ! -x "$BIN/etcd" ]; then
    ( cd "$WORK/etcd"
      printf 'module etcdbuild\n\ngo 1.24\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" > go.mod
      rm -f go.sum; go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
      nice -n 19 go build -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3 )
  fi
  log "binaries in $BIN: $(ls "$BIN" | tr '\n' ' ')"
}

start() { # name cmd...
  local name=$1; shift
  setsid nohup "$@" > "$RUN/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$RUN/pids/$name.pid"
}

waitfor() { # seconds name cmd...: fails at once, with the log's tail, when that process died
  local t=$1 n=$2; shift 2; local end=$(( $(date +%s) + t ))
  until "$@" >/dev/null 2>&1; do
    kill -0 "$(cat "$RUN/pids/$n.pid")" 2>/dev/null || { log "$n died; its log ends with:"; tail -20 "$RUN/logs/$n.log" >&2; return 1; }
    [ "$(date +%s)" -lt "$end" ] || { log "timeout after ${t}s waiting for: $*"; tail -20 "$RUN/logs/$n.log" >&2; return 1; }
    sleep 0.2
  done
}

up() {
  local b; for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet; do
    [ -x "$BIN/$b" ] || { log "$BIN/$b is missing: run '$0 build' first (a cold build takes 15-60 min)"; exit 1; }; done
  for b in containerd ctr runc kubectl openssl; do
    command -v "$b" >/dev/null || { log "$b is not installed (apt-get install containerd runc containernetworking-plugins kubectl openssl)"; exit 1; }; done
  [ -x /usr/lib/cni/bridge ] || { log "/usr/lib/cni/bridge missing: apt-get install containernetworking-plugins"; exit 1; }
  down >/dev/null 2>&1 || true
  rm -rf "$RUN"; mkdir -p "$RUN"/{pki,logs,pids} "$NODE"/{cni/net.d,kubelet,pod-logs,fake-sysctl} "$CSTATE"
  openssl genrsa -out "$RUN/pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$RUN/pki/sa.key" -pubout -out "$RUN/pki/sa.pub" 2>/dev/null
  local token; token=$(openssl rand -hex 16)
  echo "$token,admin,admin,system:masters" > "$RUN/pki/tokens.csv"
  cat > "$RUN/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: "https://$NODE_IP:6443", insecure-skip-tls-verify: true}
users:
- name: admin
  user: {token: "$token"}
contexts:
- name: local
  context: {cluster: local, user: admin, namespace: default}
current-context: local
KC
  chmod 600 "$RUN/kubeconfig" "$RUN/pki/tokens.csv"
  export KUBECONFIG=$RUN/kubeconfig
  # The bridge first: the API server listens on its address, so that pods (a Job running tandem) reach it
  # without kube-proxy.
  ip link show "$BRIDGE" >/dev/null 2>&1 || ip link add "$BRIDGE" type bridge
  ip addr show dev "$BRIDGE" | grep -q "inet $NODE_IP/" || ip addr add "$NODE_IP/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  start etcd "$BIN/etcd" --name=local --data-dir="$RUN/etcd-data" --unsafe-no-fsync \
    --listen-client-urls=http://127.0.0.1:2379 --advertise-client-urls=http://127.0.0.1:2379 \
    --listen-peer-urls=http://127.0.0.1:2380 --initial-advertise-peer-urls=http://127.0.0.1:2380 \
    --initial-cluster=local=http://127.0.0.1:2380
  # RBAC is on: the in-cluster Job's test proves tandem's minimal Role is enough.
  start kube-apiserver "$BIN/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 \
    --bind-address=$NODE_IP --advertise-address=$NODE_IP --secure-port=6443 --endpoint-reconciler-type=none \
    --cert-dir="$RUN/pki/apiserver" --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$RUN/pki/sa.pub" --service-account-signing-key-file="$RUN/pki/sa.key" \
    --service-cluster-ip-range=10.96.0.0/16 --token-auth-file="$RUN/pki/tokens.csv" \
    --kubelet-preferred-address-types=InternalIP --authorization-mode=Node,RBAC

  cat > "$NODE/cni/net.d/10-tandemk8s.conflist" <<EOF
{ "cniVersion": "1.0.0", "name": "tandemk8s",
  "plugins": [ {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
                "ipam": {"type": "host-local", "dataDir": "$NODE/cni/ipam",
                         "ranges": [[{"subnet": "$POD_SUBNET", "gateway": "$NODE_IP"}]]}} ] }
EOF
  cat > "$NODE/containerd.toml" <<EOF
version = 2
root = "$NODE/containerd"
state = "$CSTATE/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/tandemk8s/pause:3.10"
  netns_mounts_under_state_dir = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$CSTATE/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$NODE/cni/net.d"
EOF
  touch "$MNTNS"; unshare --mount="$MNTNS" --propagation private true
  local k; for k in vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops kernel/keys/root_maxkeys kernel/keys/root_maxbytes; do
    cat "/proc/sys/$k" > "$NODE/fake-sysctl/${k//\//.}"
    nsenter --mount="$MNTNS" -- mount --bind "$NODE/fake-sysctl/${k//\//.}" "/proc/sys/$k"
  done
  start containerd nsenter --mount="$MNTNS" -- containerd --config "$NODE/containerd.toml"
  waitfor 30 containerd ctr --address "$SOCK" version

  waitfor 90 kube-apiserver kubectl get --raw /readyz
  awk '/BEGIN CERT/{n++} n>=2' "$RUN/pki/apiserver/apiserver.crt" > "$RUN/pki/ca.crt"
  [ -s "$RUN/pki/ca.crt" ] || cp "$RUN/pki/apiserver/apiserver.crt" "$RUN/pki/ca.crt"
  start kube-controller-manager "$BIN/kube-controller-manager" --kubeconfig="$RUN/kubeconfig" --leader-elect=false \
    --bind-address=127.0.0.1 --secure-port=10257 --service-account-private-key-file="$RUN/pki/sa.key" \
    --root-ca-file="$RUN/pki/ca.crt" --use-service-account-credentials=false
  start kube-scheduler "$BIN/kube-scheduler" --kubeconfig="$RUN/kubeconfig" --leader-elect=false \
    --bind-address=127.0.0.1 --secure-port=10259

  cat > "$NODE/kubelet-config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
oomScoreAdj: 0
containerRuntimeEndpoint: unix://$SOCK
imageServiceEndpoint: unix://$SOCK
podLogsDir: $NODE/pod-logs
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
serializeImagePulls: false
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
nodeStatusUpdateFrequency: 2s
syncFrequency: 10s
EOF
  # The kubelet uses the admin kubeconfig: with RBAC on, system:masters lets it register its node.
  start kubelet nsenter --mount="$MNTNS" -- "$BIN/kubelet" --config="$NODE/kubelet-config.yaml" --kubeconfig="$RUN/kubeconfig" \
    --root-dir="$NODE/kubelet" --cert-dir="$NODE/kubelet/pki" --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" --v=1
  waitfor 120 kubelet kubectl wait --for=condition=Ready "node/$NODE_NAME" --timeout=5s
  waitfor 60 kube-controller-manager sh -c "! kubectl get node $NODE_NAME -o jsonpath='{.spec.taints}' | grep -q not-ready"
  waitfor 60 kube-controller-manager kubectl get sa default -n default
  waitfor 60 kube-controller-manager kubectl get cm kube-root-ca.crt -n default
  log "cluster usable"
  echo "KUBECONFIG=$RUN/kubeconfig"
  echo "CONTAINERD=$SOCK"
}

down() {
  local n p pids=()
  if [ -f "$RUN/pids/kubelet.pid" ]; then p=$(cat "$RUN/pids/kubelet.pid"); kill "$p" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; kill -9 "$p" 2>/dev/null || true; rm -f "$RUN/pids/kubelet.pid"; fi
  if [ -S "$SOCK" ]; then
    local c
    for c in $(ctr --address "$SOCK" -n k8s.io tasks ls -q 2>/dev/null); do ctr --address "$SOCK" -n k8s.io tasks kill -s SIGKILL "$c" 2>/dev/null || true; done
    sleep 0.5
    for c in $(ctr --address "$SOCK" -n k8s.io containers ls -q 2>/dev/null); do
      ctr --address "$SOCK" -n k8s.io tasks delete -f "$c" >/dev/null 2>&1 || true
      ctr --address "$SOCK" -n k8s.io containers delete "$c" >/dev/null 2>&1 || true; done
  fi
  if [ -f "$RUN/pids/containerd.pid" ]; then p=$(cat "$RUN/pids/containerd.pid"); kill "$p" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; kill -9 "$p" 2>/dev/null || true; rm -f "$RUN/pids/containerd.pid"; fi
  for p in $(ps -eo pid=,args= | awk -v s="$SOCK" '$2 ~ /containerd-shim/ && index($0, s) {print $1}'); do kill -9 "$p" 2>/dev/null || true; done
  local m; for m in $(awk -v a="$NODE/" -v b="$CSTATE/" 'index($2,a)==1 || index($2,b)==1 {print $2}' /proc/self/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || true; done
  [ -e "$MNTNS" ] && { umount "$MNTNS" 2>/dev/null || umount -l "$MNTNS" 2>/dev/null || true; }
  ip link show "$BRIDGE" >/dev/null 2>&1 && ip link del "$BRIDGE" || true
  local v; for v in $(ip -o link show type veth 2>/dev/null | awk -F'[ @:]+' -v b="$BRIDGE" '$0 ~ "master " b {print $2}'); do ip link del "$v" 2>/dev/null || true; done
  for n in kube-scheduler kube-controller-manager kube-apiserver etcd; do
    local f=$RUN/pids/$n.pid; [ -f "$f" ] || continue
    p=$(cat "$f"); kill "$p" 2>/dev/null && pids+=("$p"); rm -f "$f"
  done
  for _ in $(seq 100); do
    local alive=0; for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break; sleep 0.1
  done
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$CSTATE" "$NODE/kubelet" "$NODE/cni/ipam" "$NODE/pod-logs"
  rm -f /var/lib/kubelet/device-plugins/kubelet.sock
  rmdir /var/lib/kubelet/device-plugins /var/lib/kubelet 2>/dev/null || true
  local h; for h in /sys/fs/cgroup/*/kubepods; do [ -d "$h" ] && find "$h" -depth -type d -exec rmdir {} + 2>/dev/null; done
  true
}

case "${1:-}" in
  build) build ;;
  up) up ;;
  down) down ;;
  *) echo "usage: $0 build|up|down" >&2; exit 2 ;;
esac
