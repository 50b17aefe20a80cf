#!/usr/bin/env bash
# A real local Kubernetes control plane for development and tests: etcd, kube-apiserver (RBAC, loopback
# only, free ports) and kube-controller-manager (garbage collector and namespace controllers).
#
#   hack/cluster.sh up          build the binaries if needed, start everything, wait for /readyz
#   hack/cluster.sh down        stop exactly what `up` started and remove its state
#   hack/cluster.sh status      say what runs; exit 0 only when the control plane is ready
#   hack/cluster.sh kubeconfig  print the path of the admin kubeconfig
#
# There is no kubelet, so no Pod ever runs; tests assert on API objects instead.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
. "$here/versions.sh"
state=${KEYSMITH_CLUSTER_DIR:-$root/.cluster}
kubeconfig=$state/kubeconfig
kubectl=$K8S_BIN_DIR/kubectl
components=(etcd kube-apiserver kube-controller-manager)

log() { printf '[cluster] %s\n' "$*" >&2; }

# pid of a component that `up` started and that still runs, or nothing.
running_pid() {
  local pidfile=$state/$1.pid pid
  [ -f "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  # Check the command line too: after a reboot the pid may belong to an unrelated process.
  [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "$1" || return 1
  echo "$pid"
}

ready() {
  [ -f "$kubeconfig" ] && [ -x "$kubectl" ] &&
    [ "$("$kubectl" --kubeconfig "$kubeconfig" get --raw /readyz --request-timeout=5s 2>/dev/null)" = ok ]
}

cmd_status() {
  local c pid all=0
  for c in "${components[@]}"; do
    if pid=$(running_pid "$c"); then log "$c running (pid $pid)"; else log "$c not running"; all=1; fi
  done
  if [ "$all" = 0 ] && ready; then
    log "ready: $("$kubectl" --kubeconfig "$kubeconfig" version -o json 2>/dev/null |
      python3 -c 'import sys, json; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])'), kubeconfig $kubeconfig"
    return 0
  fi
  log "not ready"
  return 1
}

stop_all() {
  local c pid i
  for c in kube-controller-manager kube-apiserver etcd; do
    pid=$(running_pid "$c") || continue
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
    log "stopped $c (pid $pid)"
  done
}

cmd_down() {
  stop_all
  rm -rf "$state"
}

free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

gen_pki() {
  local d=$state/pki
  mkdir -p "$d"
  (
    cd "$d"
    # One CA signs the serving certificate and the admin client certificate; ECDSA keys are quick to make.
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=keysmith-test-ca \
      -keyout ca.key -out ca.crt
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=kube-apiserver \
      -keyout apiserver.key -out apiserver.csr
    # The IP SAN and CA:FALSE matter to rustls/webpki, which reject certificates a browser might accept.
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > srv.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile srv.ext \
      -out apiserver.crt
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/O=system:masters/CN=keysmith-admin" \
      -keyout admin.key -out admin.csr
    printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n' > cli.ext
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile cli.ext -out admin.crt
    openssl genrsa -out sa.key 2048
    openssl rsa -in sa.key -pubout -out sa.pub
  ) >"$state/logs/pki.log" 2>&1 || { cat "$state/logs/pki.log" >&2; return 1; }
}

start() {
  local name=$1; shift
  # 9>&-: the component must not inherit the lock held by `up`, or it would hold it for its lifetime.
  setsid "$@" >"$state/logs/$name.log" 2>&1 < /dev/null 9>&- &
  echo $! > "$state/$name.pid"
}

fail_with_log() {
  log "$1; last lines of $state/logs/$2.log:"
  tail -n 40 "$state/logs/$2.log" >&2 || true
  stop_all
  exit 1
}

wait_for() {
  local what=$1 log_name=$2 timeout=$3; shift 3
  local deadline=$((SECONDS + timeout))
  until "$@"; do
    running_pid "$log_name" >/dev/null || fail_with_log "$what exited" "$log_name"
    [ "$SECONDS" -lt "$deadline" ] || fail_with_log "$what not ready after ${timeout}s" "$log_name"
    sleep 0.25
  done
}

cmd_up() {
  mkdir -p "$(dirname "$state")"
  # Serialise concurrent `up`s (parallel test processes): the second waits, then finds it running.
  exec 9>"$state.lock"
  flock 9
  if cmd_status >/dev/null 2>&1; then
    log "already running; kubeconfig $kubeconfig"
    return 0
  fi
  "$here/build-tools.sh"
  local start_time=$SECONDS
  stop_all
  rm -rf "$state"
  mkdir -p "$state/logs" "$state/etcd" "$state/kcm"
  gen_pki
  local etcd_port etcd_peer api_port kcm_port
  read -r etcd_port etcd_peer api_port kcm_port < <(free_ports 4)

  start etcd "$ETCD_BIN_DIR/etcd" --name=keysmith --data-dir="$state/etcd" \
    --listen-client-urls="http://127.0.0.1:$etcd_port" --advertise-client-urls="http://127.0.0.1:$etcd_port" \
    --listen-peer-urls="http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls="http://127.0.0.1:$etcd_peer" \
    --initial-cluster="keysmith=http://127.0.0.1:$etcd_peer" --unsafe-no-fsync=true --log-level=warn
  wait_for etcd etcd 30 curl -fs -o /dev/null "http://127.0.0.1:$etcd_port/health"

  local pki=$state/pki
  start kube-apiserver "$K8S_BIN_DIR/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$etcd_port" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$api_port" \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" --authorization-mode=RBAC \
    --service-cluster-ip-range=10.0.0.0/24 --allow-privileged=true \
    --disable-admission-plugins=ServiceAccount \
    --service-account-issuer="https://127.0.0.1:$api_port/" \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --cert-dir="$pki"

  cat > "$kubeconfig" <<KCFG
apiVersion: v1
kind: Config
clusters:
- name: keysmith
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority: $pki/ca.crt
users:
- name: keysmith-admin
  user:
    client-certificate: $pki/admin.crt
    client-key: $pki/admin.key
contexts:
- name: keysmith
  context: {cluster: keysmith, user: keysmith-admin}
current-context: keysmith
KCFG
  # /readyz (with admin credentials) also waits for post-start hooks such as the RBAC bootstrap roles.
  wait_for kube-apiserver kube-apiserver 120 ready

  start kube-controller-manager "$K8S_BIN_DIR/kube-controller-manager" \
    --kubeconfig="$kubeconfig" --controllers=garbagecollector,namespace --leader-elect=false \
    --bind-address=127.0.0.1 --secure-port="$kcm_port" --cert-dir="$state/kcm"
  wait_for kube-controller-manager kube-controller-manager 60 \
    curl -fsk -o /dev/null "https://127.0.0.1:$kcm_port/healthz"

  log "control plane ready in $((SECONDS - start_time))s: $("$kubectl" --kubeconfig "$kubeconfig" version -o json |
    python3 -c 'import sys, json; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])')"
  log "kubeconfig: $kubeconfig (export KUBECONFIG=\$(hack/cluster.sh kubeconfig))"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  kubeconfig) echo "$kubeconfig" ;;
  *) echo "usage: $0 up|down|status|kubeconfig" >&2; exit 2 ;;
esac
