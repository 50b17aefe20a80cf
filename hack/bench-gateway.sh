#!/usr/bin/env bash
# The gateway's added latency, measured, not asserted (make bench-gateway):
#   a local OpenAI-style upstream that answers at once (the loadgen example), then open-loop load at each
#   rate for SECONDS: straight to the upstream, through keysmith-gateway, and through the LiteLLM proxy
#   (PyPI, pinned: 1.77.7, the newest whose proxy extra installs from PyPI alone) in the same run. Added latency = percentile through the proxy - percentile direct.
#   Prints a table per rate and ends with the RESULT line for 1,000 requests/s.
#
#   RATES="100 1000 3000" SECONDS_PER_RUN=20 hack/bench-gateway.sh   (100/s: a rate LiteLLM sustains here)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cache=${KEYSMITH_CACHE:-$HOME/.cache/keysmith}
target=${CARGO_TARGET_DIR:-$cache/cargo-target}
LITELLM_VERSION=${LITELLM_VERSION:-1.77.7}
RATES=${RATES:-"100 1000 3000"}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-20}
log() { printf '[bench-gateway] %s\n' "$*" >&2; }
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

log "building keysmith-gateway and the load generator (release)"
CARGO_TARGET_DIR=$target cargo build --release --locked -q -p keysmith-gateway --bin keysmith-gateway --example loadgen
gateway=$target/release/keysmith-gateway
loadgen=$target/release/examples/loadgen

venv=$cache/litellm-$LITELLM_VERSION
if [ ! -x "$venv/bin/litellm" ]; then
  log "installing the LiteLLM proxy $LITELLM_VERSION from PyPI into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "litellm[proxy]==$LITELLM_VERSION"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
up=$(free_port); gw=$(free_port); gwm=$(free_port); ll=$(free_port)
key=ksg-bench-issued-key
"$loadgen" upstream "127.0.0.1:$up" >"$work/upstream.log" 2>&1 & pids+=($!)

# One route with every kind of limit the gateway checks per request, none of them reached.
sha=$(printf %s "$key" | sha256sum | cut -d' ' -f1)
cat >"$work/routes.json" <<JSON
[{"secret": "bench", "upstreamKey": "sk-upstream", "route": {"version": 1,
  "apiKey": {"namespace": "bench", "name": "bench"}, "api": "openai",
  "upstream": "http://127.0.0.1:$up/v1", "issuedKeySha256": "$sha", "state": "Active",
  "limits": {"budget": {"limitUsd": 1000000, "reset": "Monthly"},
             "limits": {"requestsPerMinute": 100000000, "tokensPerMinute": 1000000000},
             "requestLimits": {"maxInputTokens": 100000, "maxOutputTokens": 4096}},
  "onLimitExceeded": "Reject",
  "pricing": [{"model": "gpt-4o-mini", "inputUsdPerMillion": 0.15, "outputUsdPerMillion": 0.6}]}}]
JSON
"$gateway" --routes-file "$work/routes.json" --listen "127.0.0.1:$gw" --metrics-addr "127.0.0.1:$gwm" \
  --log-level warn >"$work/gateway.log" 2>&1 & gw_pid=$!; pids+=($gw_pid)

cat >"$work/litellm.yaml" <<YAML
model_list:
  - model_name: gpt-4o-mini
    litellm_params: {model: openai/gpt-4o-mini, api_base: "http://127.0.0.1:$up/v1", api_key: sk-upstream}
general_settings: {master_key: $key}
litellm_settings: {telemetry: false}
YAML
LITELLM_LOG=ERROR "$venv/bin/litellm" --config "$work/litellm.yaml" --host 127.0.0.1 --port "$ll" \
  >"$work/litellm.log" 2>&1 & pids+=($!)

wait_up() { for _ in $(seq 1 120); do curl -sf -o /dev/null "$1" && return 0; sleep 0.5; done; log "$1 never answered"; cat "$work"/*.log >&2; exit 1; }
wait_up "http://127.0.0.1:$gwm/readyz"
wait_up "http://127.0.0.1:$ll/health/liveliness"

run() { "$loadgen" load "$1" "$key" "$2" "$SECONDS_PER_RUN"; }
field() { sed -n "s/.* $1=\([0-9]*\)us.*/\1/p" <<<"$2"; }
errors() { sed -n 's/.* errors=\([0-9]*\) .*/\1/p' <<<"$1"; }
peak_rss=0
result=""
printf '%-10s %-10s %8s %8s %9s %9s %7s\n' rate target p50_ms p99_ms added_p50 added_p99 errors
for rate in $RATES; do
  # Warm each path briefly so connection set-up is not measured.
  for base in "http://127.0.0.1:$up/v1" "http://127.0.0.1:$gw/v1" "http://127.0.0.1:$ll/v1"; do
    "$loadgen" load "$base" "$key" 100 2 >/dev/null
  done
  direct=$(run "http://127.0.0.1:$up/v1" "$rate")
  through=$(run "http://127.0.0.1:$gw/v1" "$rate")
  rss=$(awk '/VmHWM/ {print int($2/1024)}' "/proc/$gw_pid/status")
  peak_rss=$(( rss > peak_rss ? rss : peak_rss ))
  litellm=$(run "http://127.0.0.1:$ll/v1" "$rate")
  d50=$(field p50 "$direct"); d99=$(field p99 "$direct")
  for pair in "direct:$direct" "gateway:$through" "litellm:$litellm"; do
    name=${pair%%:*}; line=${pair#*:}
    p50=$(field p50 "$line"); p99=$(field p99 "$line")
    printf '%-10s %-10s %8.3f %8.3f %9.3f %9.3f %7s\n' "$rate" "$name" \
      "$(bc -l <<<"$p50/1000")" "$(bc -l <<<"$p99/1000")" \
      "$(bc -l <<<"($p50-$d50)/1000")" "$(bc -l <<<"($p99-$d99)/1000")" "$(errors "$line")"
  done
  if [ "$rate" = 1000 ]; then
    a50=$(bc -l <<<"($(field p50 "$through")-$d50)/1000"); a99=$(bc -l <<<"($(field p99 "$through")-$d99)/1000")
    l99=$(bc -l <<<"($(field p99 "$litellm")-$d99)/1000")
    ratio=$(bc -l <<<"if ($a99 > 0) $l99/$a99 else 0")
    result=$(printf 'RESULT gateway rps=1000 p50_added_ms=%.3f p99_added_ms=%.3f litellm_p99_added_ms=%.3f ratio=%.1f peak_rss_mib=%s' \
      "$a50" "$a99" "$l99" "$ratio" "$peak_rss")
  fi
done
log "measured on $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ); LiteLLM $LITELLM_VERSION"
[ -n "$result" ] && echo "$result"
