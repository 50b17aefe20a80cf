#!/usr/bin/env bash
# Upgrade check, in the style of cert-manager's: the operator of the last release (hack/upgrade-base)
# converges a namespace of varied ApiKeys on the local control plane, then the operator of this working
# tree takes over the same objects and the same provider account, and must leave them alone:
#   - no new provider key, none revoked, none changed at the provider, no mutating provider call;
#   - no Secret value changed, and no Secret written at all;
#   - every ApiKey in its steady state (Ready, or Ready=False/KeyDisabled where spec.disabled), for
#     the ApiKey's current generation;
#   - no ApiKey or ModelHub write by the new operator, neither when it takes over nor during an
#     observation window once it has settled, which lasts until every ApiKey's periodic usage poll has
#     run in it. Any write fails the check with the diff of what changed and who wrote it. The one
#     exception is what a release adds once to objects of the previous one (MIGRATION_* below: the
#     deletion-protection finalizers of hubs and their credential Secrets, new ApiKey conditions),
#     allowed at takeover only.
#
#   hack/upgrade-check.sh                    base from hack/upgrade-base
#   UPGRADE_BASE=<rev> hack/upgrade-check.sh another base (any revision of this clone)
#   UPGRADE_OBSERVE=<seconds>                the shortest observation window (default 20)
#
# The base operator is built once per commit (git worktree, the shared cargo target directory) and
# cached under $KEYSMITH_CACHE/upgrade-base/<sha>/. Both phases use the working tree's keysmith-sim: one
# simulator process for the whole run, since the provider's state must outlive the operator switch.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=SCRIPTDIR/versions.sh disable=SC1091
. "$here/versions.sh"
# One namespace per run, so that two runs on the shared control plane (a developer's and make test's, say)
# never reconcile or delete each other's objects. The CRDs are cluster-wide: a concurrent run may install
# the base's for a moment, which is harmless as long as the base's schema keeps every field the new
# operator writes.
ns=keysmith-upgrade-$(openssl rand -hex 3)
observe=${UPGRADE_OBSERVE:-20}
start=$SECONDS
log() { printf '[upgrade] %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }
kubectl() { "$here/kubectl" "$@"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/keysmith/cargo-target}
work=$(mktemp -d)
sim_pid="" op_pid="" op_label="" worktree="" ns_created=false crds_from="" stopped_rc=0 window=0
new_bin=$work/keysmith new_sim=$work/keysmith-sim

# ---- cleanup ------------------------------------------------------------------------------------------

stop_pid() { # $1 pid: SIGTERM, 10 s to exit, then SIGKILL; sets stopped_rc to its exit status
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null && log "pid $pid ignored SIGTERM for 10 s; killed"
  stopped_rc=0
  wait "$pid" 2>/dev/null || stopped_rc=$?
}

# Without an operator the finalizers would keep the ApiKeys, and the namespace, forever.
remove_namespace() {
  kubectl get namespace "$ns" >/dev/null 2>&1 || return 0
  local ak
  for ak in $(kubectl get apikeys,modelhubs -n "$ns" -o name 2>/dev/null) \
    $(kubectl get secrets -n "$ns" -l keysmith.dev/credential=true -o name 2>/dev/null); do
    kubectl patch -n "$ns" "$ak" --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
  done
  kubectl delete namespace "$ns" --ignore-not-found --wait=false >/dev/null
}

remove_worktree() {
  [ -n "$worktree" ] || return 0
  git -C "$root" worktree remove --force "$worktree" 2>/dev/null || rm -rf "$worktree"
  git -C "$root" worktree prune
  worktree=""
}

print_tails() {
  local f
  for f in "$work"/*.log; do
    [ -s "$f" ] || continue
    log "--- last 40 lines of $(basename "$f") ---"
    tail -n 40 "$f" >&2
  done
}

cleanup() {
  local rc=$?
  set +e
  [ -n "$op_pid" ] && stop_pid "$op_pid"
  [ -n "$sim_pid" ] && stop_pid "$sim_pid"
  [ "$rc" = 0 ] || print_tails
  $ns_created && remove_namespace
  # The cluster is shared with the other tests: leave the working tree's CRDs installed, not the base's.
  [ "$crds_from" = base ] && [ -x "$new_bin" ] && apply_crds "$new_bin"
  remove_worktree
  if [ "$rc" != 0 ] && compgen -G "$work/*.log" >/dev/null; then
    log "logs and snapshots kept in $work"
  else
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- binaries -----------------------------------------------------------------------------------------

# The base as a full sha; a base missing from this clone (a shallow CI checkout, say) is an error,
# never a skipped check.
resolve_base() {
  local rev=${UPGRADE_BASE:-$(grep -v '^#' "$here/upgrade-base" | head -n 1)}
  [ -n "$rev" ] || fail "no base revision: hack/upgrade-base is empty and UPGRADE_BASE is unset"
  base_sha=$(git -C "$root" rev-parse --verify --quiet "$rev^{commit}") ||
    fail "upgrade base '$rev' is not a commit of this clone (shallow clone? run 'git fetch --unshallow', or set UPGRADE_BASE)"
  base_short=$(git -C "$root" rev-parse --short "$base_sha")
}

# Built from a worktree of the base commit, into the shared target directory so that its dependencies
# are reused; the binary is copied out at once, since the working tree's build overwrites debug/keysmith.
build_base() {
  base_bin=$KEYSMITH_CACHE/upgrade-base/$base_sha/keysmith
  if [ -x "$base_bin" ]; then
    log "base operator $base_short from the cache ($base_bin)"
    return
  fi
  local t0=$SECONDS
  worktree=$KEYSMITH_CACHE/upgrade-base/$base_sha.src
  log "building the base operator $base_short (once per commit)"
  [ -e "$worktree" ] && { git -C "$root" worktree remove --force "$worktree" 2>/dev/null || rm -rf "$worktree"; }
  git -C "$root" worktree prune
  local out
  out=$(git -C "$root" worktree add --detach "$worktree" "$base_sha" 2>&1) ||
    fail "git worktree add of the base $base_short failed: $out"
  (cd "$worktree" && cargo build --locked --quiet --bin keysmith) || fail "the base $base_short does not build"
  mkdir -p "$(dirname "$base_bin")"
  cp "$CARGO_TARGET_DIR/debug/keysmith" "$base_bin.tmp"
  mv "$base_bin.tmp" "$base_bin"
  remove_worktree
  log "base operator built in $((SECONDS - t0))s"
}

# Copied into the run's directory, so a concurrent build of the working tree cannot swap them mid-run.
build_new() {
  local t0=$SECONDS
  (cd "$root" && cargo build --locked --quiet -p keysmith --bin keysmith -p keysmith-simulators --bin keysmith-sim) ||
    fail "the working tree does not build"
  cp "$CARGO_TARGET_DIR/debug/keysmith" "$new_bin"
  cp "$CARGO_TARGET_DIR/debug/keysmith-sim" "$new_sim"
  # Both builds share debug/keysmith; a stale copy would compare the base with itself.
  ! cmp -s "$new_bin" "$base_bin" || fail "the working tree's build left the base operator in $CARGO_TARGET_DIR/debug"
  log "working tree built in $((SECONDS - t0))s"
}

apply_crds() { # $1: the operator binary whose CRDs to install
  local crds
  crds=$("$1" crds | kubectl apply --server-side --force-conflicts -o name -f -)
  # shellcheck disable=SC2086 # one argument per CRD
  kubectl wait --for=condition=Established --timeout=60s $crds >/dev/null
}

# ---- provider and scenario ----------------------------------------------------------------------------

start_simulator() {
  management_key="sk-or-v1-$(openssl rand -hex 32)"
  imported_key="sk-or-v1-$(openssl rand -hex 32)"
  local port
  port=$(free_port)
  sim=http://127.0.0.1:$port
  KEYSMITH_SIMULATOR_MANAGEMENT_KEY=$management_key "$new_sim" openrouter --addr "127.0.0.1:$port" \
    >"$work/simulator.log" 2>&1 &
  sim_pid=$!
  until curl -fs -o /dev/null "$sim/_sim/clock"; do
    kill -0 "$sim_pid" 2>/dev/null || fail "the simulator exited"
    sleep 0.2
  done
  # The imported key must exist at the provider before it can be imported.
  curl -fs -o /dev/null -d "{\"value\":\"$imported_key\",\"name\":\"pre-existing key\"}" "$sim/_sim/keys"
  log "OpenRouter simulator on $sim"
}

# An expiry this many days ahead, at midnight UTC: always in the future, whenever the check runs.
in_days() { date -u -d "+$1 days" +%Y-%m-%dT00:00:00Z; }

apikey() { # $1 name, then spec lines (flow style)
  printf -- '---\napiVersion: keysmith.dev/v1alpha1\nkind: ApiKey\nmetadata:\n  name: %s\nspec:\n  hubRef: {name: openrouter}\n' "$1"
  shift
  [ $# = 0 ] || printf '  %s\n' "$@"
}

# One ApiKey per kind of state an upgrade must carry over. The two disabled ones settle on
# Ready=False/KeyDisabled; rotated-once is rotated under the base operator (see rotate_once).
scenario() {
  cat <<YAML
apiVersion: v1
kind: Secret
metadata: {name: openrouter-management}
type: Opaque
stringData: {key: $management_key}
---
apiVersion: v1
kind: Secret
metadata: {name: upgrade-existing-key}
type: Opaque
stringData: {value: $imported_key}
---
apiVersion: keysmith.dev/v1alpha1
kind: ModelHub
metadata: {name: openrouter}
spec:
  provider: openrouter
  endpoint: $sim/api/v1
  credentialsRef: {name: openrouter-management, key: key}
  usageRefreshInterval: 30s
  defaults:
    budget: {limitUsd: 5, reset: Daily}
YAML
  apikey plain-a
  apikey plain-b
  apikey display-name 'displayName: upgrade check (display name)'
  apikey budget-daily 'budget: {limitUsd: 10, reset: Daily}'
  apikey budget-weekly 'budget: {limitUsd: 50, reset: Weekly}'
  apikey budget-monthly-byok 'budget: {limitUsd: 25, reset: Monthly, includeByok: true}'
  apikey budget-never 'budget: {limitUsd: 100, reset: Never}'
  apikey use-anyway 'budget: {limitUsd: 5, reset: Daily}' 'onLimitExceeded: UseAnyway'
  apikey disabled 'disabled: true'
  apikey disabled-with-budget 'disabled: true' 'budget: {limitUsd: 10, reset: Monthly}'
  apikey expires "expiresAt: \"$(in_days 400)\""
  apikey expires-with-budget "expiresAt: \"$(in_days 90)\"" 'budget: {limitUsd: 20, reset: Weekly}'
  apikey rotation 'rotation: {every: 720h}'
  apikey rotation-overlap 'rotation: {every: 720h, overlap: 2h}'
  apikey rotated-once
  apikey custom-secret 'secret: {name: custom-secret-openai, keys: {apiKey: OPENAI_API_KEY, baseUrl: OPENAI_BASE_URL}}'
  apikey custom-secret-meta \
    'secret: {name: custom-secret-meta-creds, keys: {apiKey: API_KEY}, labels: {team: upgrade}, annotations: {example.com/owner: upgrade-check}}'
  apikey limits 'limits: {requestsPerMinute: 60, requestsPerDay: 10000, tokensPerMinute: 100000, tokensPerDay: 2000000}'
  apikey model-limits 'modelLimits: [{model: openai/gpt-4o-mini, requestsPerMinute: 30, tokensPerDay: 500000}]'
  apikey request-limits 'requestLimits: {maxInputTokens: 8000, maxOutputTokens: 2000}'
  apikey rate-limit 'rateLimit: {requests: 100, intervalSeconds: 60}'
  apikey orphan 'deletionPolicy: Orphan'
  apikey imported 'import: {secretRef: {name: upgrade-existing-key, key: value}}'
  apikey everything 'displayName: upgrade check (everything)' 'budget: {limitUsd: 30, reset: Monthly}' \
    "expiresAt: \"$(in_days 200)\"" 'rotation: {every: 720h, overlap: 30m}' \
    'secret: {name: everything-creds, keys: {apiKey: KEY, baseUrl: URL}}' \
    'limits: {requestsPerDay: 5000}' 'requestLimits: {maxOutputTokens: 4096}'
}

# Budget windows reset at 00:00 UTC and move status.usage.windowResetsAt: a legitimate write that a
# run across midnight would report. The scenario takes under two minutes, so start it after midnight.
avoid_midnight() {
  local left=$((86400 - $(date -u +%s) % 86400))
  [ "$left" -gt 300 ] && return 0
  log "UTC midnight in ${left}s would reset the budget windows mid-run; waiting for it"
  sleep $((left + 5))
}

create_scenario() {
  kubectl create namespace "$ns" >/dev/null
  ns_created=true
  scenario >"$work/scenario.yaml"
  kubectl apply -n "$ns" -f "$work/scenario.yaml" >/dev/null
  mapfile -t ready_keys < <(kubectl get apikeys -n "$ns" -o go-template='{{range .items}}{{if not .spec.disabled}}{{.metadata.name}}{{"\n"}}{{end}}{{end}}')
  mapfile -t disabled_keys < <(kubectl get apikeys -n "$ns" -o go-template='{{range .items}}{{if .spec.disabled}}{{.metadata.name}}{{"\n"}}{{end}}{{end}}')
  log "namespace $ns: 1 ModelHub, ${#ready_keys[@]} ApiKeys to be Ready and ${#disabled_keys[@]} disabled"
}

# ---- operators ----------------------------------------------------------------------------------------

start_operator() { # $1 label (base or new), $2 binary
  op_label=$1
  op_port=$(free_port)
  # Namespace-scoped, so that it never touches another test's objects; no Lease to wait for.
  "$2" run --namespace "$ns" --health-addr "127.0.0.1:$op_port" --leader-election=false \
    >"$work/$1-operator.log" 2>&1 &
  op_pid=$!
  until curl -fs -o /dev/null "http://127.0.0.1:$op_port/healthz"; do
    kill -0 "$op_pid" 2>/dev/null || fail "the $1 operator exited at start"
    sleep 0.2
  done
  log "$1 operator running (pid $op_pid), log in $work/$1-operator.log"
}

stop_operator() {
  stop_pid "$op_pid"
  op_pid=""
  log "$op_label operator stopped (exit status $stopped_rc)"
}

wait_steady() { # $1 timeout in seconds
  local ready_reason='{.status.conditions[?(@.type=="Ready")].reason}'
  kubectl wait -n "$ns" --for=condition=Ready --timeout="$1s" modelhub/openrouter \
    "${ready_keys[@]/#/apikey/}" >/dev/null &&
    kubectl wait -n "$ns" --for=jsonpath="$ready_reason"=KeyDisabled --timeout="$1s" \
      "${disabled_keys[@]/#/apikey/}" >/dev/null && return 0
  kubectl get -n "$ns" modelhubs,apikeys >&2
  fail "the $op_label operator did not bring every ApiKey to its steady state within $1s"
}

# Everything the operators write, as kind/name=resourceVersion.
versions() {
  kubectl get -n "$ns" apikeys,modelhubs,secrets \
    -o jsonpath='{range .items[*]}{.kind}/{.metadata.name}={.metadata.resourceVersion}{" "}{end}'
}

# Which objects were written between two outputs of versions().
changed_between() {
  local written
  written=$(comm -13 <(tr ' ' '\n' <<<"$1" | sort) <(tr ' ' '\n' <<<"$2" | sort) | sed 's/=.*//' | paste -sd ' ' -)
  echo "${written:-nothing}"
}

# Waits until nothing in the namespace has been written for $1 seconds (at most $2 seconds).
wait_quiet() {
  local last now since=$SECONDS deadline=$((SECONDS + $2))
  last=$(versions)
  while [ "$SECONDS" -lt "$deadline" ]; do
    sleep 1
    now=$(versions)
    if [ "$now" != "$last" ]; then
      last=$now since=$SECONDS
    elif [ $((SECONDS - since)) -ge "$1" ]; then
      return 0
    fi
  done
  log "still writing after $2s; the comparison will show what"
  return 1
}

# A rotation in its overlap at the switch: the new operator must neither rotate again nor revoke the
# previous key before its time.
rotate_once() {
  local prev=""
  kubectl annotate -n "$ns" apikey/rotated-once keysmith.dev/rotate=upgrade-check --overwrite >/dev/null
  for _ in $(seq 1 150); do
    prev=$(kubectl get apikey -n "$ns" rotated-once -o jsonpath='{.status.rotation.previousKeyId}')
    [ -n "$prev" ] && break
    sleep 0.2
  done
  [ -n "$prev" ] || fail "the base operator did not rotate rotated-once"
  kubectl wait -n "$ns" --for=condition=Ready --timeout=30s apikey/rotated-once >/dev/null
}

# An operator has taken over once it has reconciled every ApiKey: each then has its Ready gauge.
wait_taken_over() { # $1 timeout in seconds
  local want=$((${#ready_keys[@]} + ${#disabled_keys[@]})) got=0 deadline=$((SECONDS + $1))
  while [ "$SECONDS" -lt "$deadline" ]; do
    got=$(curl -fs "http://127.0.0.1:$op_port/metrics" | grep -c "^keysmith_apikey_ready{namespace=\"$ns\"," || true)
    [ "$got" -ge "$want" ] && return 0
    sleep 0.5
  done
  fail "the $op_label operator reconciled $got of $want ApiKeys within $1s"
}

# Finished ApiKey reconciles (the duration histogram's count: observed once a reconcile has written).
apikey_reconciles() {
  curl -fs "http://127.0.0.1:$op_port/metrics" |
    awk '/^keysmith_reconcile_duration_seconds_count\{controller="apikey"\}/ { print $2 }'
}

# At least $observe seconds, and until every ApiKey has had one more (periodic) reconcile: the hub's
# usageRefreshInterval is 30s, so each key's usage poll falls in the window and must write nothing.
observe_window() {
  local t0=$SECONDS want=$((${#ready_keys[@]} + ${#disabled_keys[@]})) from now=0
  from=$(apikey_reconciles)
  sleep "$observe"
  while [ "$SECONDS" -lt $((t0 + observe + 60)) ]; do
    now=$(apikey_reconciles)
    [ $((now - from)) -ge "$want" ] && break
    sleep 1
  done
  window=$((SECONDS - t0))
  [ $((now - from)) -ge "$want" ] ||
    fail "only $((now - from)) ApiKey reconciles in ${window}s of observation, fewer than the $want ApiKeys"
  log "observed ${window}s: $((now - from)) ApiKey reconciles (every key's periodic usage poll) by the new operator"
}

# ---- snapshots and comparison -------------------------------------------------------------------------

# Per Secret: resourceVersion, data key names, SHA-256 of the data and the metadata the operator sets.
# The values never leave this pipe.
secret_digests() {
  kubectl get secrets -n "$ns" -o json | python3 -c '
import hashlib, json, sys
out = {}
for s in json.load(sys.stdin)["items"]:
    m, data = s["metadata"], s.get("data") or {}
    out[m["name"]] = {
        "resourceVersion": m["resourceVersion"],
        "dataKeys": sorted(data),
        "dataSha256": hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest(),
        "metadata": {k: m.get(k) for k in ("labels", "annotations", "ownerReferences", "finalizers")},
    }
json.dump(out, sys.stdout, indent=1, sort_keys=True)
'
}

snapshot() { # $1: directory name under $work
  local d=$work/$1
  mkdir -p "$d"
  # managedFields say who wrote what, and when.
  kubectl get apikeys -n "$ns" -o json --show-managed-fields >"$d/apikeys.json"
  kubectl get modelhubs -n "$ns" -o json --show-managed-fields >"$d/modelhubs.json"
  kubectl get events -n "$ns" -o json >"$d/events.json"
  secret_digests >"$d/secrets.json"
  curl -fsS "$sim/_sim/keys" >"$d/sim-keys.json"
}

# s0: the base operator stopped; s1: the new one settled; s2: after the observation window. Prints what
# differs and the summary; exits non-zero on any failed check.
compare() {
  python3 - "$work" "$base_short" "$window" <<'PY'
import json, os, sys

work, base, observe = sys.argv[1:]
def load(snap, name):
    with open(os.path.join(work, snap, name)) as f:
        return json.load(f)
def objects(snap, name):
    return {o["metadata"]["name"]: o for o in load(snap, name)["items"]}

failures = []
def fail(msg):
    failures.append(msg)
    print(f"[upgrade] FAIL: {msg}", file=sys.stderr)

def flat(o, path=""):
    """Dotted paths to leaves; lists of conditions keyed by their type, so a diff reads well."""
    if isinstance(o, dict) and o:
        return {k2: v2 for k, v in o.items() for k2, v2 in flat(v, f"{path}.{k}" if path else k).items()}
    if isinstance(o, list) and o:
        keyed = all(isinstance(x, dict) and "type" in x for x in o)
        return {k2: v2 for i, x in enumerate(o)
                for k2, v2 in flat(x, f"{path}[{x['type'] if keyed else i}]").items()}
    return {path: o}

def diff(old, new):
    """What a write changed; resourceVersion and managedFields only say that it happened."""
    def strip(o):
        o = json.loads(json.dumps(o))
        for k in ("resourceVersion", "managedFields"):
            o.get("metadata", {}).pop(k, None)
        return flat(o)
    a, b = strip(old), strip(new)
    lines = [f"    {p}: {json.dumps(a.get(p, '<absent>'))} -> {json.dumps(b.get(p, '<absent>'))}"
             for p in sorted(set(a) | set(b)) if a.get(p, "<absent>") != b.get(p, "<absent>")]
    seen = {json.dumps(m, sort_keys=True) for m in old["metadata"].get("managedFields", [])}
    for m in new["metadata"].get("managedFields", []):
        if json.dumps(m, sort_keys=True) not in seen:
            lines.append(f"    written by {m.get('manager')} ({m.get('operation')}"
                         f"{' /' + m['subresource'] if m.get('subresource') else ''})")
    return lines or ["    (no field changed)"]

# What this release adds once to objects the base left without it, and only that: the finalizer that keeps
# a hub while ApiKeys use it, and the finalizer and label that keep its credential Secret while a hub does.
MIGRATION_FINALIZERS = {"keysmith.dev/hub-in-use", "keysmith.dev/credential-in-use"}
MIGRATION_LABELS = {"keysmith.dev/credential"}
# And the ApiKey conditions this release adds: which limits nobody enforces, and whether the provider's
# management API is in sync (apart from Ready). Each key's status gains them in one write at takeover.
MIGRATION_CONDITIONS = {"LimitsEnforced", "Synced"}
# And in effectiveLimits: the entry tier labelled as the account's (appliesTo), the tier's request rate
# filling rateLimit, and the note on the provider's defaults.
def without_new_conditions(obj):
    status = obj.get("status") or {}
    if "conditions" in status:
        status["conditions"] = [c for c in status["conditions"] if c.get("type") not in MIGRATION_CONDITIONS]
    limits = status.get("effectiveLimits")
    if isinstance(limits, dict):
        limits.pop("providerDefaults", None)
        if (limits.get("rateLimit") or {}).get("source") == "ProviderDefault":
            limits.pop("rateLimit")
        for value in limits.values():
            if isinstance(value, dict):
                value.pop("appliesTo", None)
def unmigrated(meta):
    meta = json.loads(json.dumps(meta))
    fin = [f for f in meta.get("finalizers") or [] if f not in MIGRATION_FINALIZERS]
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k not in MIGRATION_LABELS}
    meta["finalizers"], meta["labels"] = fin or None, labels or None
    return meta
migrations = []
def only_migration(old, new):
    a, b = json.loads(json.dumps(old)), json.loads(json.dumps(new))
    for o in (a, b):
        o["metadata"] = unmigrated(o["metadata"])
        without_new_conditions(o)
    return all(l.startswith("    written by") or l == "    (no field changed)" for l in diff(a, b))

def writes(kind, old, new, when, migrating=False):
    """Objects whose resourceVersion moved between two snapshots: each a failure, reported once per
    distinct diff with the names it applies to. `migrating`: the takeover, where this release's one-time
    metadata (see MIGRATION_FINALIZERS) is expected."""
    if set(old) != set(new):
        fail(f"{kind}s differ {when}: before {sorted(old)}, after {sorted(new)}")
    groups = {}
    for name in sorted(set(old) & set(new)):
        if old[name]["metadata"]["resourceVersion"] != new[name]["metadata"]["resourceVersion"]:
            if migrating and only_migration(old[name], new[name]):
                migrations.append(f"{kind} {name}")
                continue
            groups.setdefault("\n".join(diff(old[name], new[name])), []).append(name)
    for lines, names in groups.items():
        what = f"{kind} {names[0]} was" if len(names) == 1 else f"{len(names)} {kind}s ({', '.join(names)}) were"
        fail(f"{what} written {when}:\n{lines}")
    return sum(len(names) for names in groups.values())

# The base operator's end state must be sound, or the comparison proves nothing.
keys0 = objects("s0", "apikeys.json")
live0 = {k["hash"]: k for k in load("s0", "sim-keys.json")["keys"] if not k["deleted"]}
held = []
for name, k in keys0.items():
    st = k.get("status") or {}
    current = st.get("keyId")
    if not current and k["spec"].get("import") and st.get("fingerprint"):
        # An imported key that keysmith did not mint has no recorded id; its fingerprint starts its hash.
        current = next((h for h in live0 if h.startswith(st["fingerprint"])), None)
    if not current:
        fail(f"base: ApiKey {name} holds no live provider key (keyId {st.get('keyId')}, fingerprint {st.get('fingerprint')})")
    for i in filter(None, [current, (st.get("rotation") or {}).get("previousKeyId")]):
        held.append(i)
        if i not in live0:
            fail(f"base: ApiKey {name} records key {i}, which is not live at the provider")
if len(held) != len(set(held)):
    fail("base: two ApiKeys record the same provider key")
orphans = sorted(set(live0) - set(held))
if orphans:
    fail(f"base: {len(orphans)} live provider keys held by no ApiKey: {orphans}")

# Steady state at the end.
keys1, keys2 = objects("s1", "apikeys.json"), objects("s2", "apikeys.json")
ready = disabled = 0
for name, k in sorted(keys2.items()):
    conds = {c["type"]: c for c in (k.get("status") or {}).get("conditions", [])}
    want = ("False", "KeyDisabled") if k["spec"].get("disabled") else ("True", "KeyReady")
    c = conds.get("Ready")
    got = (c["status"], c["reason"]) if c else None
    if got != want:
        fail(f"ApiKey {name}: Ready is {got}, expected {want}")
    elif c.get("observedGeneration") != k["metadata"]["generation"]:
        fail(f"ApiKey {name}: Ready is for generation {c.get('observedGeneration')}, the ApiKey is at {k['metadata']['generation']}")
    elif want[0] == "True":
        ready += 1
    else:
        disabled += 1
    for t in ("Reconciling", "Stalled", "LimitExceeded", "Expired"):
        if conds.get(t, {}).get("status") == "True":
            fail(f"ApiKey {name}: {t} is True ({conds[t].get('reason')}: {conds[t].get('message')})")
hubs2 = objects("s2", "modelhubs.json")
for name, h in hubs2.items():
    c = {c["type"]: c for c in (h.get("status") or {}).get("conditions", [])}.get("Ready")
    if not c or c["status"] != "True":
        fail(f"ModelHub {name} is not Ready: {c}")

# Writes by the new operator: at takeover (s0 -> s1) and once settled (s1 -> s2).
takeover = writes("ApiKey", keys0, keys1, "when the new operator took over", migrating=True)
churn = writes("ApiKey", keys1, keys2, f"during the {observe} s observation window")
hubs0, hubs1 = objects("s0", "modelhubs.json"), objects("s1", "modelhubs.json")
hub_writes = writes("ModelHub", hubs0, hubs1, "when the new operator took over", migrating=True)
hub_writes += writes("ModelHub", hubs1, hubs2, f"during the {observe} s observation window")

# Secrets, over the new operator's whole run.
sec0, sec2 = load("s0", "secrets.json"), load("s2", "secrets.json")
if set(sec0) != set(sec2):
    fail(f"Secrets differ: added {sorted(set(sec2) - set(sec0))}, removed {sorted(set(sec0) - set(sec2))}")
changed_values = [n for n in sorted(set(sec0) & set(sec2)) if sec0[n]["dataSha256"] != sec2[n]["dataSha256"]]
for n in changed_values:
    fail(f"Secret {n}: data changed (data keys {sec0[n]['dataKeys']} -> {sec2[n]['dataKeys']})")
secret_writes = [n for n in sorted(set(sec0) & set(sec2)) if sec0[n]["resourceVersion"] != sec2[n]["resourceVersion"]]
for n in secret_writes:
    if n not in changed_values:
        if unmigrated(sec0[n]["metadata"]) == unmigrated(sec2[n]["metadata"]):
            migrations.append(f"Secret {n}")
            continue
        a, b = flat(sec0[n]["metadata"]), flat(sec2[n]["metadata"])
        delta = [f"    metadata.{p}: {json.dumps(a.get(p))} -> {json.dumps(b.get(p))}" for p in sorted(set(a) | set(b)) if a.get(p) != b.get(p)]
        fail(f"Secret {n} was written, its data unchanged:\n" + "\n".join(delta or ["    (no label, annotation or owner changed)"]))

# Events, over the new operator's whole run: one for a condition transition would mean a status write
# too; any other is noise in `kubectl describe` that an upgrade should not make.
def event_versions(snap):
    return {e["metadata"]["name"]: e for e in load(snap, "events.json")["items"]}
ev0, ev2 = event_versions("s0"), event_versions("s2")
events = [e for n, e in sorted(ev2.items())
          if n not in ev0 or ev0[n]["metadata"]["resourceVersion"] != e["metadata"]["resourceVersion"]]
for e in events:
    o = e.get("involvedObject") or e.get("regarding") or {}
    fail(f"Event by the new operator: {o.get('kind')} {o.get('name')}: {e.get('type')} {e.get('reason')}: {e.get('message') or e.get('note')}")

# The provider, over the new operator's whole run.
live2 = {k["hash"]: k for k in load("s2", "sim-keys.json")["keys"] if not k["deleted"]}
new_keys, revoked = sorted(set(live2) - set(live0)), sorted(set(live0) - set(live2))
if new_keys:
    fail(f"{len(new_keys)} new provider keys: {[(h, live2[h]['name']) for h in new_keys]}")
if revoked:
    fail(f"{len(revoked)} provider keys revoked: {[(h, live0[h]['name']) for h in revoked]}")
changed_keys = 0
for h in sorted(set(live0) & set(live2)):
    a, b = flat(live0[h]), flat(live2[h])
    delta = [f"    {p}: {json.dumps(a.get(p))} -> {json.dumps(b.get(p))}" for p in sorted(set(a) | set(b)) if a.get(p) != b.get(p)]
    if delta:
        changed_keys += 1
        fail(f"provider key {h} ({live0[h]['name']}) changed:\n" + "\n".join(delta))
calls = load(".", "new-requests.json")["requests"]
mutating = [f"{r['method']} {r['path']} -> {r['status']}" for r in calls if r["method"] not in ("GET", "HEAD")]
if mutating:
    fail(f"the new operator made {len(mutating)} mutating provider calls: {mutating}")

print(f"[upgrade] new operator: {len(calls)} provider calls, {len(mutating)} mutating; "
      f"{len(live2)} live provider keys for {len(keys2)} ApiKeys", file=sys.stderr)
if migrations:
    print(f"[upgrade] one-time additions of this release (deletion protection, new ApiKey conditions): {', '.join(migrations)}", file=sys.stderr)
status = "passed" if not failures else f"FAILED ({len(failures)} problems above)"
print(f"[upgrade] base {base} -> working tree: {len(keys2)} ApiKeys ({ready} Ready, {disabled} disabled as specified), "
      f"{len(new_keys)} new provider keys, {len(revoked)} revoked, {changed_keys} changed, "
      f"{len(changed_values)} Secret values changed, {len(secret_writes) - sum(m.startswith('Secret ') for m in migrations)} Secret writes, "
      f"{takeover} ApiKey writes at takeover, {churn} in {observe} s, {hub_writes} ModelHub writes, {len(events)} Events: {status}")
sys.exit(1 if failures else 0)
PY
}

# ---- main ---------------------------------------------------------------------------------------------

# The base converges everything, including a rotation in its overlap, and is then restarted once: a
# restart recomputes the periodic figures (the hub's key counts, say), so the baseline is what the base
# itself leaves after a restart, and a write that any restart makes is not counted against the upgrade.
base_phase() {
  local t0=$SECONDS before
  start_operator base "$base_bin"
  wait_steady 120
  rotate_once
  wait_quiet 5 60 || true
  stop_operator
  log "base operator converged in $((SECONDS - t0))s"
  before=$(versions)
  start_operator base-restart "$base_bin"
  wait_taken_over 90
  wait_quiet 5 60 || true
  stop_operator
  log "the base's own restart wrote: $(changed_between "$before" "$(versions)")"
}

# The upgrade as the README describes it: the new CRDs first, then the new operator. s1 is taken once
# it has reconciled every ApiKey and gone quiet, s2 after the observation window.
new_phase() {
  local t0=$SECONDS
  apply_crds "$new_bin"
  crds_from=new
  curl -fsS -o /dev/null -X DELETE "$sim/_sim/requests"
  start_operator new "$new_bin"
  wait_taken_over 90
  wait_steady 60
  wait_quiet 5 60 || true
  log "new operator took over and settled in $((SECONDS - t0))s"
  snapshot s1
  observe_window
  snapshot s2
  stop_operator
  curl -fsS "$sim/_sim/requests" >"$work/new-requests.json"
}

"$here/cluster.sh" up >/dev/null
KUBECONFIG=$("$here/cluster.sh" kubeconfig)
export KUBECONFIG
resolve_base
build_base
build_new
start_simulator
crds_from=base
apply_crds "$base_bin"
avoid_midnight
create_scenario
base_phase
snapshot s0
new_phase
compare
log "passed in $((SECONDS - start))s"
