#!/usr/bin/env bash
# End-to-end demo on the local control plane: the OpenRouter simulator, the operator and keysmith-gateway
# as local processes, a local inference upstream, and the manifests of examples/openrouter and
# examples/gateway applied with kubectl, as a user would. A request through the gateway is answered, and
# one over the key's input cap is refused by the gateway.
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
cargo build --locked --quiet -p keysmith --bin keysmith -p keysmith-simulators --bin keysmith-sim \
  -p keysmith-gateway --bin keysmith-gateway --example loadgen
keysmith=$CARGO_TARGET_DIR/debug/keysmith
keysmith_sim=$CARGO_TARGET_DIR/debug/keysmith-sim
keysmith_gateway=$CARGO_TARGET_DIR/debug/keysmith-gateway
loadgen=$CARGO_TARGET_DIR/debug/examples/loadgen
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

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
# The inference upstream the gateway forwards to: an OpenAI-style server that answers at once.
upstream=$(free_port)
"$loadgen" upstream "127.0.0.1:$upstream" >"$work/upstream.log" 2>&1 &
pids+=($!)
log "inference upstream on 127.0.0.1:$upstream"

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
for f in "$root"/examples/openrouter/*.yaml "$root"/examples/gateway/*.yaml; do
  sed -e "s|REPLACE-WITH-YOUR-OPENROUTER-MANAGEMENT-KEY|$management_key|" \
      -e "s|REPLACE-WITH-AN-EXISTING-OPENROUTER-KEY|$imported_key|" \
      -e "s|^  provider: openrouter$|  provider: openrouter\n  endpoint: http://127.0.0.1:$port/api/v1\n  inferenceEndpoint: http://127.0.0.1:$upstream/v1|" "$f"
  echo "---"
done >"$work/manifests.yaml"
kubectl apply -n "$ns" -f "$work/manifests.yaml"

# Install the chart as a user would. No Pod runs here (there is no kubelet), so the operator runs as a
# local process instead, with a token of the chart's ServiceAccount (TokenRequest API, as the kubelet would
# mount it): this proves that the chart's least-privilege RBAC is all the operator needs.
"$here/helm" upgrade --install keysmith "$root/charts/keysmith" --namespace keysmith-system --create-namespace \
  --skip-crds --set gateway.enabled=true >/dev/null
server=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
ca=$(kubectl config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority}')
# A kubeconfig whose only identity is a token of the chart's ServiceAccount $1 (the same server and CA as
# the admin kubeconfig, no client certificate), written to $2.
sa_kubeconfig() {
  local sa=$1 file=$2 token whoami
  token=$(kubectl create token "$sa" -n keysmith-system --duration=1h)
  (umask 077; cat >"$file" <<KCFG
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
  whoami=$(KUBECONFIG=$file kubectl auth whoami -o jsonpath='{.status.userInfo.username}')
  [ "$whoami" = "system:serviceaccount:keysmith-system:$sa" ] || { log "$file authenticates as $whoami"; exit 1; }
  log "identity: $whoami (ServiceAccount token)"
}
sa=$(kubectl get deployment keysmith -n keysmith-system -o jsonpath='{.spec.template.spec.serviceAccountName}')
sa_kubeconfig "$sa" "$work/operator.kubeconfig"
gateway_sa=$(kubectl get deployment keysmith-gateway -n keysmith-system -o jsonpath='{.spec.template.spec.serviceAccountName}')
sa_kubeconfig "$gateway_sa" "$work/gateway.kubeconfig"
# keysmith-gateway with its own ServiceAccount's token: its Role (list and watch Secrets in keysmith-system)
# is all it needs.
gateway_port=$(free_port)
gateway_admin=$(free_port)
KUBECONFIG=$work/gateway.kubeconfig "$keysmith_gateway" --namespace keysmith-system \
  --listen "127.0.0.1:$gateway_port" --metrics-addr "127.0.0.1:$gateway_admin" >"$work/gateway.log" 2>&1 &
pids+=($!)
until curl -fs -o /dev/null "http://127.0.0.1:$gateway_admin/readyz"; do sleep 0.2; done
log "keysmith-gateway on 127.0.0.1:$gateway_port, logs in $work/gateway.log"
health_port=$(free_port)
KUBECONFIG=$work/operator.kubeconfig "$keysmith" run --namespace "$ns" --health-addr "127.0.0.1:$health_port" \
  --gateway-url "http://127.0.0.1:$gateway_port" --gateway-namespace keysmith-system \
  --gateway-usage-url "http://127.0.0.1:$gateway_admin/usage" >"$work/operator.log" 2>&1 &
operator=$!
pids+=($operator)
log "operator running (pid $operator), logs in $work/operator.log"

if ! kubectl wait -n "$ns" --for=condition=Ready --timeout=90s modelhub/openrouter apikey/chat-backend \
  apikey/research-notebook apikey/chat-via-gateway; then
  log "not Ready in time; operator log:"
  tail -n 50 "$work/operator.log" >&2
  kubectl get -n "$ns" modelhubs,apikeys -o yaml >&2
  exit 1
fi
echo
kubectl get -n "$ns" modelhubs,apikeys
echo
for s in chat-backend-openrouter research-notebook chat-via-gateway; do
  printf 'Secret %s data keys: %s\n' "$s" \
    "$(kubectl get secret -n "$ns" "$s" -o go-template='{{range $k, $v := .data}}{{$k}} {{end}}')"
done
# Through the gateway: the app's Secret holds a key issued for the gateway and the gateway's URL; a
# request is forwarded, and one over the key's input cap (64 tokens) is refused by the gateway.
secret_field() { kubectl get secret -n "$ns" chat-via-gateway -o "jsonpath={.data.$1}" | base64 -d; }
issued=$(secret_field OPENAI_API_KEY)
base_url=$(secret_field OPENAI_BASE_URL)
[ "${issued#ksg-}" != "$issued" ] || { log "chat-via-gateway holds no gateway key"; exit 1; }
echo
echo "chat-via-gateway: OPENAI_BASE_URL=$base_url"
ask() { # prompt -> HTTP status, body in $work/answer.json
  curl -s -o "$work/answer.json" -w '%{http_code}' "$base_url/chat/completions" -H "authorization: Bearer $issued" \
    -H 'content-type: application/json' \
    -d "{\"model\":\"openai/gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"$1\"}]}"
}
code=000
for _ in $(seq 1 100); do
  code=$(ask "Say hello") && [ "$code" = 200 ] && break
  sleep 0.2
done
[ "$code" = 200 ] || { log "a request through the gateway got $code"; cat "$work/answer.json" >&2; exit 1; }
echo "through the gateway, a short prompt: HTTP $code"
long=$(printf 'please summarise this sentence %.0s' $(seq 1 40))
code=$(ask "$long")
echo "through the gateway, a prompt over maxInputTokens: HTTP $code $(cat "$work/answer.json")"
[ "$code" = 400 ] && grep -q '"code":"max_input_tokens"' "$work/answer.json" \
  || { log "the gateway did not refuse a prompt over the cap"; exit 1; }
if grep -qF "$issued" "$work/operator.log" "$work/gateway.log"; then
  log "the issued key leaked into a log"; exit 1
fi
# The gateway's metered usage reaches status at the key's next sync (an edit brings it forward; the
# gateway's report is read at most every 5 s).
sleep 5
kubectl patch apikey -n "$ns" chat-via-gateway --type merge -p '{"spec":{"displayName":"chat via gateway"}}' >/dev/null
requests=""
for _ in $(seq 1 150); do
  requests=$(kubectl get apikey -n "$ns" chat-via-gateway -o jsonpath='{.status.usage.requestsToday}')
  [ -n "$requests" ] && [ "$requests" -ge 1 ] && break
  sleep 0.2
done
[ -n "$requests" ] && [ "$requests" -ge 1 ] || { log "the gateway's usage did not reach status"; exit 1; }
echo "chat-via-gateway status.usage.requestsToday: $requests (metered by the gateway)"
# The status must never carry a key value.
if kubectl get -n "$ns" apikeys -o yaml | grep -qe "$imported_key" -e "${management_key}"; then
  log "a key value leaked into the ApiKey objects"; exit 1
fi
if grep -qe "$imported_key" -e "$management_key" "$work/operator.log" "$work/simulator.log" "$work/gateway.log"; then
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
  # The route Secret left with its ApiKey.
  routes=$(kubectl get secrets -n keysmith-system -l keysmith.dev/gateway-route=true -o name)
  [ -z "$routes" ] || { log "route Secrets left behind: $routes"; exit 1; }
  # Least privilege must still be enough: no request of the operator was refused (a refused Event would
  # only be logged, not fail a check above).
  if grep -qi 'forbidden' "$work/operator.log" "$work/gateway.log"; then
    log "the operator was refused a request; operator log:"
    grep -i 'forbidden' "$work/operator.log" "$work/gateway.log" | tail -n 20 >&2
    exit 1
  fi
  log "demo checks passed"
  exit 0
fi
log "running; Ctrl-C stops the operator and the simulator (hack/cluster.sh down stops the control plane)"
wait "$operator"
