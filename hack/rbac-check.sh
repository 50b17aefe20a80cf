#!/usr/bin/env bash
# Proves the Helm chart's RBAC on the real control plane: what the operator's ServiceAccount may do is
# exactly the intended rule list, in both modes, and nothing more.
#
#   hack/rbac-check.sh      (hack/chart-check.sh runs it); prints failures and a summary
#   hack/rbac-check.sh -v   also every check that passed
#
# Two releases of the chart, in a namespace of their own:
#   cluster-wide  watchNamespaces=[]          a ClusterRole, plus the leader-election Role
#   namespaced    watchNamespaces=[<team-x>]  a Role in team-x only, plus the leader-election Role
# For each, `kubectl auth can-i --list` (the apiserver's own evaluation of every binding) minus what any
# ServiceAccount may do must equal the expected rules; general properties (no wildcard, no delete, no
# deletecollection, no other API group) are asserted on top, single verbs are spot-checked, and a
# ServiceAccount token (TokenRequest, as a Pod would get it) makes real requests that must succeed or be
# refused. That the rules are also enough is what hack/demo.sh proves: it runs the operator on such a
# token through the whole OpenRouter scenario.
#
# Every name carries a random run id; the releases are uninstalled (their ClusterRole/ClusterRoleBinding
# with them) and the namespaces deleted on exit, and leftovers of interrupted runs are removed on start.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
# KEYSMITH_CHART: another copy of the chart, to see this check fail on a broken one.
chart=${KEYSMITH_CHART:-$root/charts/keysmith}
"$here/cluster.sh" up >/dev/null
export KUBECONFIG=$("$here/cluster.sh" kubeconfig)
kubectl() { "$here/kubectl" "$@"; }
helm() { "$here/helm" "$@"; }
log() { printf '[rbac] %s\n' "$*" >&2; }
start=$SECONDS
verbose=false
[ "${1:-}" = -v ] && verbose=true

id=$(openssl rand -hex 3)
sys=ksrbac-$id-system   # where both releases live
teamx=ksrbac-$id-team-x # watched by the namespaced release
teamy=ksrbac-$id-team-y # watched by nobody but the cluster-wide release
cw=ksrbac-$id           # cluster-wide release; full name ksrbac-$id-keysmith
nsd=ksrbac-$id-ns       # namespaced release; full name ksrbac-$id-ns-keysmith
work=$(mktemp -d)
failures=0

cleanup() {
  local rc=$?
  helm uninstall "$cw" -n "$sys" --ignore-not-found >/dev/null 2>&1 || true
  helm uninstall "$nsd" -n "$sys" --ignore-not-found >/dev/null 2>&1 || true
  kubectl delete namespace "$sys" "$teamx" "$teamy" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT

# Cluster-scoped leftovers of an interrupted run: ClusterRoles and ClusterRoleBindings of a ksrbac-* release
# whose namespace is gone or going. A concurrent run's objects are left alone (its namespace is Active).
kubectl get clusterroles,clusterrolebindings \
  -o jsonpath='{range .items[*]}{.kind} {.metadata.name} {.metadata.annotations.meta\.helm\.sh/release-namespace}{"\n"}{end}' |
  while read -r kind name relns; do
    case $name in ksrbac-*) ;; *) continue ;; esac
    phase=$(kubectl get namespace "$relns" -o jsonpath='{.status.phase}' 2>/dev/null || true)
    if [ "$phase" != Active ]; then
      kubectl delete "$(tr '[:upper:]' '[:lower:]' <<<"$kind")" "$name" --ignore-not-found >/dev/null
      log "removed leftover $kind $name"
    fi
  done
# The namespaced release's Role for Events in `default`, likewise.
kubectl get roles,rolebindings -n default \
  -o jsonpath='{range .items[*]}{.kind} {.metadata.name} {.metadata.annotations.meta\.helm\.sh/release-namespace}{"\n"}{end}' |
  while read -r kind name relns; do
    case $name in ksrbac-*) ;; *) continue ;; esac
    phase=$(kubectl get namespace "$relns" -o jsonpath='{.status.phase}' 2>/dev/null || true)
    if [ "$phase" != Active ]; then
      kubectl delete -n default "$(tr '[:upper:]' '[:lower:]' <<<"$kind")" "$name" --ignore-not-found >/dev/null
      log "removed leftover $kind default/$name"
    fi
  done

# The real requests below need the CRDs; install the chart's when missing, and never change existing ones
# (other tests may be using them).
crds="crd/apikeys.keysmith.dev crd/modelhubs.keysmith.dev crd/clustermodelhubs.keysmith.dev"
if ! kubectl get $crds >/dev/null 2>&1; then
  kubectl apply --server-side -f "$chart/crds/" >/dev/null
  kubectl wait --for=condition=Established --timeout=60s $crds >/dev/null
fi
for n in "$sys" "$teamx" "$teamy"; do kubectl create namespace "$n" >/dev/null; done
helm install "$cw" "$chart" -n "$sys" --skip-crds >/dev/null
helm install "$nsd" "$chart" -n "$sys" --skip-crds --set "watchNamespaces={$teamx}" >/dev/null
sa_cw=system:serviceaccount:$sys:$cw-keysmith
sa_ns=system:serviceaccount:$sys:$nsd-keysmith
nobody=system:serviceaccount:$sys:nobody-$id # no binding at all: what every ServiceAccount may do
log "releases $cw (cluster-wide) and $nsd (watchNamespaces=[$teamx]) installed in $sys"

checks=0
fail() { log "FAIL: $*"; failures=$((failures + 1)); checks=$((checks + 1)); }
pass() { $verbose && log "ok: $*"; checks=$((checks + 1)); }

# `kubectl auth can-i --list` as one normalised line per rule: resource|resourceNames|verbs (sorted).
rules() { # who namespace [kubeconfig]
  local who=$1 ns=$2 cfg=${3:-$KUBECONFIG} as=()
  [ -n "$who" ] && as=(--as="$who")
  KUBECONFIG=$cfg kubectl auth can-i --list "${as[@]}" -n "$ns" | python3 -c '
import re, sys
rows = set()
for line in sys.stdin.read().splitlines()[1:]:
    m = re.match(r"^(\S*)\s+\[(.*?)\]\s+\[(.*?)\]\s+\[(.*?)\]\s*$", line)
    if not m:
        sys.exit("cannot parse: " + line)
    res, urls, names, verbs = m.groups()
    key = res if res else "url:" + urls
    rows.add("%s|%s|%s" % (key, " ".join(sorted(names.split())), " ".join(sorted(verbs.split()))))
print("\n".join(sorted(rows)))'
}

# Rules of `who` in `ns` beyond those of a ServiceAccount without any binding.
granted() { # who namespace
  rules "$1" "$2" >"$work/who.rules" && rules "$nobody" "$2" >"$work/nobody.rules" || {
    echo "cannot list the rules of $1 in $2" >&2; return 1; }
  # Never compare against an empty baseline: every identity may at least create selfsubjectreviews.
  grep -q '^selfsubjectreviews.authentication.k8s.io|' "$work/nobody.rules" || {
    echo "unexpected baseline rules in $2" >&2; return 1; }
  comm -23 "$work/who.rules" "$work/nobody.rules"
}

# What the chart must grant in every watched namespace (charts/keysmith/templates/_helpers.tpl).
expected_ns='apikeys.keysmith.dev/finalizers||update
apikeys.keysmith.dev/status||patch
apikeys.keysmith.dev||get list patch watch
events.events.k8s.io||create patch
modelhubs.keysmith.dev/status||patch
modelhubs.keysmith.dev||get list patch watch
secrets||create delete get list patch watch'
# What ClusterModelHubs need, cluster-wide in both modes.
expected_cluster='clustermodelhubs.keysmith.dev/status||patch
clustermodelhubs.keysmith.dev||get list patch watch
namespaces||get list watch'
expected_lease() { # lease name
  printf 'leases.coordination.k8s.io||create\nleases.coordination.k8s.io|%s|get update\n' "$1"
}

expect_rules() { # description expected who namespace
  local want have
  want=$(printf '%s\n' "$2" | sed '/^$/d' | sort)
  have=$(granted "$3" "$4") || { fail "$1: no rule list"; return; }
  if [ "$want" = "$have" ]; then
    pass "$1: exactly the expected rules"
  else
    fail "$1: rules differ (- expected, + granted):"
    diff <(echo "$want") <(echo "$have") | sed -n 's/^</  -/p; s/^>/  +/p' >&2  || true
  fi
  # Properties that must hold whatever the expected list says.
  if grep -q '\*' <<<"$have"; then fail "$1: a wildcard is granted"; fi
  # delete: on Secrets only (the one a key moves out of); nothing else keysmith touches is ever deleted.
  if grep -Eq '\|[^|]*\b(deletecollection|escalate|bind|impersonate)\b' <<<"$have" ||
    grep -v '^secrets|' <<<"$have" | grep -Eq '\|[^|]*\bdelete\b'; then
    fail "$1: deletecollection, escalate, bind, impersonate, or delete on anything but Secrets is granted"
  fi
  local groups
  groups=$(cut -d'|' -f1 <<<"$have" | sed '/^$/d; s|/.*||; s/^[^.]*\.\{0,1\}//' | sort -u | sed 's/^$/(core)/')
  for g in $groups; do
    case $g in "(core)" | keysmith.dev | events.k8s.io | coordination.k8s.io) ;;
      *) fail "$1: API group $g is granted" ;; esac
  done
}

# kubectl auth can-i VERB RESOURCE ... as `who`, expecting yes or no.
can() { # yes|no who args...
  local want=$1 who=$2 got; shift 2
  got=$(kubectl auth can-i "$@" --as="$who" 2>/dev/null || true)
  if [ "$got" = "$want" ]; then pass "can-i $* -> $got"; else fail "can-i $* as $who: want $want, got ${got:-error}"; fi
}

# A kubeconfig holding a fresh token of the ServiceAccount, the same server and CA as the admin's.
token_kubeconfig() { # sa-name file
  local server ca token
  server=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
  ca=$(kubectl config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority}')
  token=$(kubectl create token "$1" -n "$sys" --duration=10m)
  (umask 077; printf 'apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: "%s", certificate-authority: "%s"}\nusers:\n- name: u\n  user: {token: "%s"}\ncontexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\n' \
    "$server" "$ca" "$token" >"$2")
}

# A real request with a token kubeconfig, expecting success or a 403.
request() { # ok|forbidden kubeconfig args...
  local want=$1 cfg=$2 out; shift 2
  if out=$(KUBECONFIG=$cfg kubectl "$@" 2>&1); then
    [ "$want" = ok ] && pass "token: kubectl $* succeeds" || fail "token: kubectl $* succeeded, want forbidden"
  elif grep -q 'Forbidden\|forbidden' <<<"$out"; then
    [ "$want" = forbidden ] && pass "token: kubectl $* is forbidden" || fail "token: kubectl $* is forbidden: $out"
  else
    fail "token: kubectl $*: $out"
  fi
}

$verbose && echo "--- cluster-wide release $cw" >&2
lease_cw=$cw-keysmith
expect_rules "cluster-wide, a namespace it does not live in" "$expected_ns
$expected_cluster" "$sa_cw" "$teamy"
expect_rules "cluster-wide, its own namespace" "$expected_ns
$expected_cluster
$(expected_lease "$lease_cw")" "$sa_cw" "$sys"
# Spot checks: granted where needed...
can yes "$sa_cw" list secrets --all-namespaces
can yes "$sa_cw" watch apikeys.keysmith.dev --all-namespaces
can yes "$sa_cw" create secrets -n "$teamy"
can yes "$sa_cw" patch secrets -n "$teamy"
can yes "$sa_cw" patch apikeys.keysmith.dev -n "$teamy" # the finalizer; RBAC cannot limit a patch to metadata
can yes "$sa_cw" patch apikeys.keysmith.dev --subresource=status -n "$teamy"
can yes "$sa_cw" patch modelhubs.keysmith.dev --subresource=status -n "$teamy"
can yes "$sa_cw" patch modelhubs.keysmith.dev -n "$teamy" # the in-use finalizer
can yes "$sa_cw" patch clustermodelhubs.keysmith.dev # the in-use finalizer
can yes "$sa_cw" list namespaces
can yes "$sa_cw" update apikeys.keysmith.dev --subresource=finalizers -n "$teamy"
can yes "$sa_cw" create events.events.k8s.io -n "$teamy"
can yes "$sa_cw" get "leases.coordination.k8s.io/$lease_cw" -n "$sys"
can yes "$sa_cw" update "leases.coordination.k8s.io/$lease_cw" -n "$sys"
can yes "$sa_cw" create leases.coordination.k8s.io -n "$sys"
# ...and refused everywhere else.
can yes "$sa_cw" delete secrets -n "$teamy" # the Secret a key moved out of (spec.secret.name)
can no "$sa_cw" delete apikeys.keysmith.dev -n "$teamy"
can no "$sa_cw" delete modelhubs.keysmith.dev -n "$teamy"
can no "$sa_cw" deletecollection secrets -n "$teamy"
can no "$sa_cw" update secrets -n "$teamy"
can no "$sa_cw" get pods -n "$teamy"
can no "$sa_cw" list configmaps -n "$teamy"
can no "$sa_cw" create serviceaccounts --subresource=token -n "$teamy"
can no "$sa_cw" update apikeys.keysmith.dev -n "$teamy"
can no "$sa_cw" create apikeys.keysmith.dev -n "$teamy"
can no "$sa_cw" update modelhubs.keysmith.dev --subresource=status -n "$teamy"
can no "$sa_cw" delete clustermodelhubs.keysmith.dev
can no "$sa_cw" create clustermodelhubs.keysmith.dev
can no "$sa_cw" patch namespaces
can no "$sa_cw" create events -n "$teamy" # core/v1 Events: keysmith publishes events.k8s.io/v1 only
can no "$sa_cw" get leases.coordination.k8s.io/some-other-lease -n "$sys"
can no "$sa_cw" update leases.coordination.k8s.io/some-other-lease -n "$sys"
can no "$sa_cw" create leases.coordination.k8s.io -n "$teamy"
can no "$sa_cw" list leases.coordination.k8s.io -n "$sys"
can no "$sa_cw" get customresourcedefinitions.apiextensions.k8s.io
can no "$sa_cw" create clusterrolebindings.rbac.authorization.k8s.io
can no "$sa_cw" impersonate users
can no "$sa_cw" '*' '*' -n "$teamy"
# The same identity through a real token: the apiserver authenticates it and enforces the same rules.
token_kubeconfig "$cw-keysmith" "$work/cw.kubeconfig"
who=$(KUBECONFIG=$work/cw.kubeconfig kubectl auth whoami -o jsonpath='{.status.userInfo.username}')
[ "$who" = "$sa_cw" ] && pass "token authenticates as $who" || fail "token authenticates as $who, want $sa_cw"
if [ "$(rules "" "$teamy" "$work/cw.kubeconfig")" = "$(rules "$sa_cw" "$teamy")" ]; then
  pass "the token's own rule list equals the impersonated one"
else
  fail "the token's own rule list differs from the impersonated one"
fi
kubectl create secret generic probe --from-literal=k=v -n "$teamy" >/dev/null
request ok "$work/cw.kubeconfig" get secret probe -n "$teamy"
request ok "$work/cw.kubeconfig" get secrets --all-namespaces
kubectl create configmap probe --from-literal=k=v -n "$teamy" >/dev/null
request forbidden "$work/cw.kubeconfig" delete configmap probe -n "$teamy"
kubectl get configmap probe -n "$teamy" >/dev/null 2>&1 && pass "ConfigMap probe survived the delete attempt" || fail "ConfigMap probe is gone"
request forbidden "$work/cw.kubeconfig" get pods -n "$teamy"
request forbidden "$work/cw.kubeconfig" get configmaps -n "$teamy"

$verbose && echo "--- namespaced release $nsd (watchNamespaces=[$teamx])" >&2
lease_ns=$nsd-keysmith
expect_rules "namespaced, the watched namespace" "$expected_ns
$expected_cluster" "$sa_ns" "$teamx"
expect_rules "namespaced, another namespace" "$expected_cluster" "$sa_ns" "$teamy"
expect_rules "namespaced, its own namespace" "$expected_cluster
secrets||get list patch watch
$(expected_lease "$lease_ns")" "$sa_ns" "$sys"
expect_rules "namespaced, default (Events of cluster-scoped objects)" "$expected_cluster
events.events.k8s.io||create patch" "$sa_ns" default
can yes "$sa_ns" list secrets -n "$teamx"
can yes "$sa_ns" watch apikeys.keysmith.dev -n "$teamx"
can yes "$sa_ns" patch apikeys.keysmith.dev --subresource=status -n "$teamx"
can no "$sa_ns" list secrets -n "$teamy"
can yes "$sa_ns" get secrets -n "$sys" # credential Secrets of ClusterModelHubs
can no "$sa_ns" create secrets -n "$sys"
can no "$sa_ns" get secrets -n default
can yes "$sa_ns" watch clustermodelhubs.keysmith.dev
can no "$sa_ns" update clustermodelhubs.keysmith.dev
can no "$sa_ns" delete namespaces
can no "$sa_ns" list secrets --all-namespaces
can no "$sa_ns" list apikeys.keysmith.dev --all-namespaces
can yes "$sa_ns" delete secrets -n "$teamx" # the Secret a key moved out of
can no "$sa_ns" delete secrets -n "$teamy"
can no "$sa_ns" get pods -n "$teamx"
[ -z "$(kubectl get clusterrole "$lease_ns" --ignore-not-found -o name)" ] &&
  pass "no ClusterRole $lease_ns" || fail "namespaced mode created ClusterRole $lease_ns"
[ -z "$(kubectl get role,rolebinding -n "$teamy" -o name)" ] &&
  pass "no Role or RoleBinding in $teamy" || fail "namespaced mode created RBAC in $teamy"
token_kubeconfig "$nsd-keysmith" "$work/ns.kubeconfig"
kubectl create secret generic probe --from-literal=k=v -n "$teamx" >/dev/null
request ok "$work/ns.kubeconfig" get secrets -n "$teamx"
request ok "$work/ns.kubeconfig" get apikeys.keysmith.dev,modelhubs.keysmith.dev -n "$teamx"
request forbidden "$work/ns.kubeconfig" get secrets -n "$teamy"
request forbidden "$work/ns.kubeconfig" get secret probe -n "$teamy"
request forbidden "$work/ns.kubeconfig" get secrets --all-namespaces
request forbidden "$work/ns.kubeconfig" get apikeys.keysmith.dev --all-namespaces

$verbose && echo "--- leader election disabled" >&2
helm upgrade "$nsd" "$chart" -n "$sys" --skip-crds --reuse-values --set leaderElection.enabled=false >/dev/null
expect_rules "namespaced without leader election, its own namespace" "$expected_cluster
secrets||get list patch watch" "$sa_ns" "$sys"
expect_rules "namespaced without leader election, the watched namespace" "$expected_ns
$expected_cluster" "$sa_ns" "$teamx"

if [ "$failures" -ne 0 ]; then
  log "$failures of $checks checks failed"
  exit 1
fi
log "$checks checks passed: the RBAC is exactly as intended, cluster-wide and namespaced ($((SECONDS - start))s)"
