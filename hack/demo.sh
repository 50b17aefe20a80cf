#!/usr/bin/env bash
# End-to-end demo on the local control plane: the OpenRouter simulator, the operator as a local
# process, and the manifests of examples/openrouter applied with kubectl, as a user would.
#
#   hack/demo.sh          run until Ctrl-C
#   hack/demo.sh --once   stop after the checks (the e2e smoke test `make test` runs)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
once=false
[ "${1:-}" = "--once" ] && once=true
ns=keysmith-demo
log() { printf '[demo] %s\n' "$*" >&2; }

"$here/cluster.sh" up
export KUBECONFIG=$("$here/cluster.sh" kubeconfig)
kubectl() { "$here/kubectl" "$@"; }
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/keysmith/cargo-target}
cargo build --locked --quiet -p keysmith --bin keysmith -p keysmith-simulators --bin keysmith-sim
keysmith=$CARGO_TARGET_DIR/debug/keysmith
keysmith_sim=$CARGO_TARGET_DIR/debug/keysmith-sim

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

"$keysmith" crds | kubectl apply --server-side --force-conflicts -f - >/dev/null
kubectl wait --for=condition=Established --timeout=60s crd/apikeys.keysmith.dev crd/modelhubs.keysmith.dev >/dev/null

# Demo credentials, random per run. They are simulator keys, printed nowhere.
management_key="sk-or-v1-$(openssl rand -hex 32)"
imported_key="sk-or-v1-$(openssl rand -hex 32)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
KEYSMITH_SIMULATOR_MANAGEMENT_KEY=$management_key "$keysmith_sim" openrouter --addr "127.0.0.1:$port" \
  >"$work/simulator.log" 2>&1 &
pids+=($!)
until curl -fs -o /dev/null "http://127.0.0.1:$port/_sim/clock"; do sleep 0.2; done
# The imported key must exist at the provider before it can be imported.
curl -fs -o /dev/null -H 'content-type: application/json' \
  -d "{\"value\":\"$imported_key\",\"name\":\"existing notebook key\"}" "http://127.0.0.1:$port/_sim/keys"
log "OpenRouter simulator on 127.0.0.1:$port"

if kubectl get namespace "$ns" >/dev/null 2>&1; then
  # A previous run's ApiKeys, hub and credential keep their finalizers while no operator runs; their
  # simulator is gone too.
  for ak in $(kubectl get apikeys,modelhubs -n "$ns" -o name) $(kubectl get secrets -n "$ns" -l keysmith.dev/credential=true -o name); do
    kubectl patch -n "$ns" "$ak" --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null
  done
  kubectl delete namespace "$ns" --wait=true --timeout=90s >/dev/null
fi
kubectl create namespace "$ns" >/dev/null
# The examples as published, with the placeholders replaced and the hub pointed at the simulator.
for f in "$root"/examples/openrouter/*.yaml; do
  sed -e "s|REPLACE-WITH-YOUR-OPENROUTER-MANAGEMENT-KEY|$management_key|" \
      -e "s|REPLACE-WITH-AN-EXISTING-OPENROUTER-KEY|$imported_key|" \
      -e "s|^  provider: openrouter$|  provider: openrouter\n  endpoint: http://127.0.0.1:$port/api/v1|" "$f"
  echo "---"
done >"$work/manifests.yaml"
kubectl apply -n "$ns" -f "$work/manifests.yaml"

# Install the chart as a user would. No Pod runs here (there is no kubelet), so the operator runs as a
# local process instead, with a token of the chart's ServiceAccount (TokenRequest API, as the kubelet would
# mount it): this proves that the chart's least-privilege RBAC is all the operator needs.
"$here/helm" upgrade --install keysmith "$root/charts/keysmith" --namespace keysmith-system --create-namespace \
  --skip-crds >/dev/null
sa=$(kubectl get deployment keysmith -n keysmith-system -o jsonpath='{.spec.template.spec.serviceAccountName}')
token=$(kubectl create token "$sa" -n keysmith-system --duration=1h)
server=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
ca=$(kubectl config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority}')
# The same server and CA as the admin kubeconfig, and no client certificate: the token is the only identity.
(umask 077; cat >"$work/operator.kubeconfig" <<KCFG
apiVersion: v1
kind: Config
clusters:
- name: keysmith
  cluster:
    server: $server
    certificate-authority: $ca
users:
- name: $sa
  user:
    token: $token
contexts:
- name: keysmith
  context: {cluster: keysmith, user: $sa}
current-context: keysmith
KCFG
)
unset token
whoami=$(KUBECONFIG=$work/operator.kubeconfig kubectl auth whoami -o jsonpath='{.status.userInfo.username}')
[ "$whoami" = "system:serviceaccount:keysmith-system:$sa" ] || { log "operator kubeconfig authenticates as $whoami"; exit 1; }
log "operator identity: $whoami (ServiceAccount token)"
health_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
KUBECONFIG=$work/operator.kubeconfig "$keysmith" run --namespace "$ns" --health-addr "127.0.0.1:$health_port" \
  >"$work/operator.log" 2>&1 &
operator=$!
pids+=($operator)
log "operator running (pid $operator), logs in $work/operator.log"

if ! kubectl wait -n "$ns" --for=condition=Ready --timeout=90s modelhub/openrouter apikey/chat-backend apikey/research-notebook; then
  log "not Ready in time; operator log:"
  tail -n 50 "$work/operator.log" >&2
  kubectl get -n "$ns" modelhubs,apikeys -o yaml >&2
  exit 1
fi
echo
kubectl get -n "$ns" modelhubs,apikeys
echo
for s in chat-backend-openrouter research-notebook; do
  printf 'Secret %s data keys: %s\n' "$s" \
    "$(kubectl get secret -n "$ns" "$s" -o go-template='{{range $k, $v := .data}}{{$k}} {{end}}')"
done
# The status must never carry a key value.
if kubectl get -n "$ns" apikeys -o yaml | grep -qe "$imported_key" -e "${management_key}"; then
  log "a key value leaked into the ApiKey objects"; exit 1
fi
if grep -qe "$imported_key" -e "$management_key" "$work/operator.log" "$work/simulator.log"; then
  log "a key value leaked into the logs"; exit 1
fi
# /metrics: per-key gauges and provider calls are exported, and no key value is.
curl -fs "http://127.0.0.1:$health_port/metrics" >"$work/metrics.txt"
for series in 'keysmith_apikey_ready{namespace="keysmith-demo",name="chat-backend"} 1' \
  'keysmith_apikey_budget_usd{namespace="keysmith-demo",name="chat-backend"} 25' \
  'keysmith_provider_requests_total{provider="openrouter",operation="create_key",outcome="ok"}' \
  'keysmith_reconciles_total{controller="apikey"}'; do
  grep -qF "$series" "$work/metrics.txt" || { log "missing from /metrics: $series"; cat "$work/metrics.txt" >&2; exit 1; }
done
if grep -qe "$imported_key" -e "$management_key" "$work/metrics.txt"; then
  log "a key value leaked into /metrics"; exit 1
fi
echo "metrics: $(grep -c '^keysmith_' "$work/metrics.txt") keysmith series on /metrics"
# The same binary as a kubectl plugin.
mkdir -p "$work/bin" && ln -sf "$keysmith" "$work/bin/kubectl-keysmith"
echo
PATH=$work/bin:$PATH kubectl keysmith status -n "$ns" | tee "$work/plugin.txt"
grep -q "chat-backend .*KeyReady" "$work/plugin.txt" || { log "kubectl keysmith status misses chat-backend"; exit 1; }
PATH=$work/bin:$PATH kubectl keysmith usage -n "$ns" chat-backend
PATH=$work/bin:$PATH kubectl keysmith rotate -n "$ns" chat-backend
for _ in $(seq 1 150); do
  token=$(kubectl get apikey -n "$ns" chat-backend -o jsonpath='{.status.rotation.lastRequestedToken}')
  [ -n "$token" ] && break
  sleep 0.2
done
[ -n "$token" ] || { log "kubectl keysmith rotate had no effect"; exit 1; }
echo "rotated: previous key $(kubectl get apikey -n "$ns" chat-backend -o jsonpath='{.status.rotation.previousKeyId}') \
stays valid until $(kubectl get apikey -n "$ns" chat-backend -o jsonpath='{.status.rotation.previousKeyRevokeAt}')"

if $once; then
  # Deleting while the operator runs revokes the minted key at the simulator.
  kubectl delete -n "$ns" apikeys --all --wait=true --timeout=60s >/dev/null
  # The hub and its credential Secret let go once the operator sees them deleted: wait for it, or the
  # namespace would stay Terminating after the operator stops.
  kubectl delete namespace "$ns" --wait=true --timeout=90s >/dev/null
  # Least privilege must still be enough: no request of the operator was refused (a refused Event would
  # only be logged, not fail a check above).
  if grep -qi 'forbidden' "$work/operator.log"; then
    log "the operator was refused a request; operator log:"
    grep -i 'forbidden' "$work/operator.log" | tail -n 20 >&2
    exit 1
  fi
  log "demo checks passed"
  exit 0
fi
log "running; Ctrl-C stops the operator and the simulator (hack/cluster.sh down stops the control plane)"
wait "$operator"
