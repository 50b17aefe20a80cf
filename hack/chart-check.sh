#!/usr/bin/env bash
# Checks the Helm chart:
#   1. helm lint --strict, with the defaults and with every optional feature on;
#   2. values.schema.json and the template's own checks refuse bad values (helm template must fail);
#   3. every mode rendered and validated by the real apiserver (server-side dry run: the OpenAPI schemas
#      and admission, not a copy of them), plus what the apiserver cannot know: the env the operator
#      reads, which RBAC objects exist in which mode, the Service and ServiceMonitor selecting the Pods;
#   4. hack/rbac-check.sh: the RBAC installed for real, with what the ServiceAccount may and may not do.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
start=$SECONDS
"$here/cluster.sh" up >/dev/null
export KUBECONFIG=$("$here/cluster.sh" kubeconfig)
chart=$root/charts/keysmith
helm() { "$here/helm" "$@"; }
kubectl() { "$here/kubectl" "$@"; }
log() { printf '[chart] %s\n' "$*" >&2; }
work=$(mktemp -d)
id=$(openssl rand -hex 3)
ns=kschart-$id     # release namespace
ns2=kschart-$id-b  # a second watched namespace
cleanup() {
  local rc=$?
  kubectl delete namespace "$ns" "$ns2" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT

# Everything optional turned on, with peers and CIDRs, as one values file.
cat >"$work/values-all.yaml" <<YAML
replicaCount: 2
restartTargets: {enabled: true}
updateStrategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}
watchNamespaces: [$ns, $ns2]
logging: {level: "keysmith=debug,kube=info", format: text}
usageInterval: 1h30m
imagePullSecrets: [{name: regcred}]
serviceAccount: {annotations: {example.com/role: keysmith}}
metrics:
  service: {annotations: {example.com/scrape: "true"}}
  serviceMonitor: {enabled: true, interval: 1m, scrapeTimeout: 10s, labels: {release: prometheus}}
podDisruptionBudget: {enabled: true, maxUnavailable: "50%"}
networkPolicy:
  enabled: true
  ingress:
    from:
      - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}
        podSelector: {matchLabels: {app.kubernetes.io/name: prometheus}}
  egress:
    dns:
      to:
        - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}
          podSelector: {matchLabels: {k8s-app: kube-dns}}
    apiServer: {cidrs: [10.0.0.1/32, "fd00::1/128"], ports: [443, 6443]}
    providers: {cidrs: [104.18.0.0/16], ports: [443]}
    extra: [{to: [{ipBlock: {cidr: 192.0.2.0/24}}], ports: [{port: 8443, protocol: TCP}]}]
priorityClassName: system-cluster-critical
nodeSelector: {kubernetes.io/os: linux}
tolerations: [{key: dedicated, operator: Equal, value: operators, effect: NoSchedule}]
YAML

# 1. Lint.
helm lint --strict "$chart" >/dev/null
helm lint --strict "$chart" -f "$work/values-all.yaml" >/dev/null
log "helm lint --strict passed (defaults, every option on)"

# 2. Bad values: each must make `helm template` fail, with a message naming the problem.
refused=0
refuse() { # expected-message-fragment helm-args...
  local want=$1 out; shift
  if out=$(helm template t "$chart" "$@" 2>&1 >/dev/null); then
    log "FAIL: helm template $* succeeded; it must be refused"; exit 1
  fi
  if ! grep -qF -- "$want" <<<"$out"; then
    log "FAIL: helm template $* failed without mentioning '$want':"; echo "$out" >&2; exit 1
  fi
  refused=$((refused + 1))
}
refuse "/logging/format" --set logging.format=xml
refuse "/concurrency" --set concurrency=0
refuse "/concurrency" --set concurrency=257
refuse "additional properties 'unknownKey' not allowed" --set unknownKey=1
refuse "additional properties 'unknown' not allowed" --set metrics.serviceMonitor.unknown=1
refuse "additional properties 'leaseName' not allowed" --set leaderElection.leaseName=x
refuse "/usageInterval" --set-string usageInterval=5
refuse "/usageInterval" --set usageInterval=5d
refuse "/usageInterval" --set usageInterval=5m-
refuse "/leaderElection/leaseDuration" --set-string leaderElection.leaseDuration=15
refuse "/leaderElection/renewInterval" --set leaderElection.renewInterval=soon
refuse "/image/pullPolicy" --set image.pullPolicy=Sometimes
refuse "/restartTargets/enabled" --set-string restartTargets.enabled=yes
refuse "/replicaCount" --set replicaCount=0
refuse "/replicaCount" --set replicaCount=1.5
refuse "/updateStrategy/type" --set updateStrategy.type=BlueGreen
refuse "/watchNamespaces/0" --set 'watchNamespaces={Team_X}'
refuse "/watchNamespaces" --set 'watchNamespaces={a,a}'
refuse "/watchNamespaces" --set watchNamespaces=team-x
refuse "/metrics/serviceMonitor/interval" --set metrics.serviceMonitor.interval=1.5m
refuse "/podDisruptionBudget/maxUnavailable" --set podDisruptionBudget.maxUnavailable=-1
refuse "/networkPolicy/egress/apiServer/ports" --set 'networkPolicy.egress.apiServer.ports={0}'
refuse "/networkPolicy/egress/providers/cidrs/0" --set 'networkPolicy.egress.providers.cidrs={api.openai.com}'
refuse "/networkPolicy/ingress/from/0" --set-json 'networkPolicy.ingress.from=[{"namespace":"monitoring"}]'
refuse "needs leaderElection.enabled=true" --set replicaCount=2 --set leaderElection.enabled=false
refuse "needs leaderElection.enabled=true" --set updateStrategy.type=RollingUpdate --set leaderElection.enabled=false
refuse "updateStrategy.rollingUpdate is set" --set updateStrategy.rollingUpdate.maxSurge=1
refuse "needs metrics.service.enabled=true" --set metrics.serviceMonitor.enabled=true --set metrics.service.enabled=false
refuse "/gateway/replicas" --set gateway.enabled=true --set gateway.replicas=2
refuse "/gateway/tokenizer" --set gateway.tokenizer=precise
log "$refused kinds of bad values refused by helm template"

# 3. Render each mode, validate it on the apiserver, and check what the apiserver cannot know.
for n in "$ns" "$ns2"; do kubectl create namespace "$n" >/dev/null; done
render() { # name helm-args...
  local name=$1; shift
  helm template keysmith-check "$chart" --namespace "$ns" "$@" >"$work/$name.yaml"
  # No ServiceMonitor CRD on this control plane (the Prometheus Operator is not installed): that object is
  # checked by assert.py below instead.
  python3 -c '
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] != "ServiceMonitor"]
yaml.safe_dump_all(docs, sys.stdout)' "$work/$name.yaml" | kubectl apply --dry-run=server -f - >/dev/null
}
render default
render namespaced --set "watchNamespaces={$ns,$ns2}"
render no-leader-election --set leaderElection.enabled=false --set metrics.service.enabled=false
render all -f "$work/values-all.yaml"
render existing-sa --set serviceAccount.create=false --set serviceAccount.name=keysmith-existing \
  --set fullnameOverride=ks --set image.tag=dev --set image.pullPolicy=Always
render gateway --set gateway.enabled=true --set gateway.tokenizer=exact --set metrics.service.enabled=true \
  --set podDisruptionBudget.enabled=true --set networkPolicy.enabled=true \
  --set gateway.podDisruptionBudget.enabled=true --set gateway.serviceMonitor.enabled=true
render namespaced-gateway --set "watchNamespaces={$ns2}" --set gateway.enabled=true

python3 - "$work" "$ns" "$ns2" <<'PY'
import sys, yaml
work, ns, ns2 = sys.argv[1:]
def load(name):
    return [d for d in yaml.safe_load_all(open(f"{work}/{name}.yaml")) if d]
def one(docs, kind, name=None):
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''}"
    return found[0]
def kinds(docs, kind):
    return [d for d in docs if d["kind"] == kind]
def env(docs):
    c = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}
def check(cond, what):
    if not cond:
        sys.exit(f"[chart] FAIL: {what}")

full = "keysmith-check"  # the release name contains the chart name
# Default: every namespace through a ClusterRole, leader election on, one replica, Recreate.
d = load("default")
e = env(d)
check("KEYSMITH_NAMESPACE" not in e, "default: KEYSMITH_NAMESPACE is set")
check(e["KEYSMITH_LEADER_ELECTION"] == "true", "default: leader election is not on")
check(e["KEYSMITH_LEASE_NAME"] == full, "default: lease name")
check(e["KEYSMITH_LEASE_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}, "lease namespace")
check(e["KEYSMITH_LEASE_DURATION"] == "15s" and e["KEYSMITH_LEASE_RENEW_INTERVAL"] == "5s", "lease timing")
check(e["KEYSMITH_HEALTH_ADDR"] == "0.0.0.0:8080", "health address")
dep = one(d, "Deployment")
check(dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"] == {"type": "Recreate"}, "default strategy")
check(len(kinds(d, "ClusterRole")) == 1 and len(kinds(d, "ClusterRoleBinding")) == 1, "default: ClusterRole")
lease_role = one(d, "Role", f"{full}-leader-election")
check(lease_role["metadata"]["namespace"] == ns, "lease Role namespace")
check(lease_role["rules"] == [
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": [full], "verbs": ["get", "update"]},
], "lease Role rules")
check(one(d, "RoleBinding", f"{full}-leader-election")["subjects"] ==
      [{"kind": "ServiceAccount", "name": full, "namespace": ns}], "lease RoleBinding subject")
for kind in ("ServiceMonitor", "PodDisruptionBudget", "NetworkPolicy"):
    check(not kinds(d, kind), f"default: {kind} rendered")
# The metrics Service selects the operator Pods, on the container port named http (8080).
svc = one(d, "Service")
pod = dep["spec"]["template"]
check(svc["spec"]["selector"].items() <= pod["metadata"]["labels"].items(), "Service selector")
check(svc["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}], "Service port")
check({"name": "http", "containerPort": 8080, "protocol": "TCP"} in pod["spec"]["containers"][0]["ports"], "container port")

# Namespaced: a Role and RoleBinding per watched namespace, the list comma-separated; cluster-wide only
# what ClusterModelHubs need (them and Namespaces), Events about them in `default`. The release namespace
# is watched here, so its Secrets are already readable and no extra credentials Role is rendered.
d = load("namespaced")
check(env(d)["KEYSMITH_NAMESPACE"] == f"{ns},{ns2}", "namespaced: KEYSMITH_NAMESPACE")
hub_role = one(d, "ClusterRole", f"{full}-cluster-hubs")
check(len(kinds(d, "ClusterRole")) == 1 and len(kinds(d, "ClusterRoleBinding")) == 1, "namespaced: cluster-wide RBAC")
check(one(d, "ClusterRoleBinding", f"{full}-cluster-hubs")["roleRef"]["name"] == f"{full}-cluster-hubs", "cluster-hubs binding")
check(hub_role["rules"] == [
    {"apiGroups": ["keysmith.dev"], "resources": ["clustermodelhubs"], "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": ["keysmith.dev"], "resources": ["clustermodelhubs/status"], "verbs": ["patch"]},
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]},
], f"namespaced: cluster-hubs rules {hub_role['rules']}")
roles = {r["metadata"]["namespace"] for r in kinds(d, "Role") if r["metadata"]["name"] == full}
bindings = {r["metadata"]["namespace"] for r in kinds(d, "RoleBinding") if r["metadata"]["name"] == full}
check(roles == {ns, ns2} and bindings == {ns, ns2}, f"namespaced: Roles in {roles}, RoleBindings in {bindings}")
check(not [r for r in kinds(d, "Role") if r["metadata"]["name"] == f"{full}-credentials"], "namespaced: credentials Role")
events_role = one(d, "Role", f"{full}-cluster-events")
check(events_role["metadata"]["namespace"] == "default" and events_role["rules"] ==
      [{"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]}], "cluster-events Role")
cluster_rules = one(load("default"), "ClusterRole")["rules"]
for r in kinds(d, "Role"):
    if r["metadata"]["name"] == full:
        check(r["rules"] + hub_role["rules"] == cluster_rules, "namespaced Role rules differ from the ClusterRole's")

# Leader election off: no Lease env, no Lease RBAC, no Service.
d = load("no-leader-election")
e = env(d)
check(e["KEYSMITH_LEADER_ELECTION"] == "false", "leader election off: env")
check(not [k for k in e if k.startswith("KEYSMITH_LEASE_")], "leader election off: lease env")
check(not [r for r in kinds(d, "Role") if "leader-election" in r["metadata"]["name"]], "leader election off: Role")
check(not kinds(d, "Service"), "metrics.service.enabled=false: Service rendered")

# Everything on.
d = load("all")
dep = one(d, "Deployment")
check(dep["spec"]["replicas"] == 2, "all: replicas")
apps = {"apiGroups": ["apps"], "resources": ["deployments", "statefulsets", "daemonsets"], "verbs": ["patch"]}
check(all(apps in r["rules"] for r in kinds(d, "Role") if r["metadata"]["name"] == full), "all: restart targets patch")
check(not any(apps in r["rules"] for r in kinds(load("default"), "ClusterRole")), "default: no workload patch")
check(dep["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}, "all: strategy")
pod_labels = dep["spec"]["template"]["metadata"]["labels"]
svc = one(d, "Service")
sm = one(d, "ServiceMonitor")
check(sm["apiVersion"] == "monitoring.coreos.com/v1", "ServiceMonitor apiVersion")
check(sm["metadata"]["labels"]["release"] == "prometheus", "ServiceMonitor labels")
check(sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items(), "ServiceMonitor selects the Service")
check(sm["spec"]["namespaceSelector"] == {"matchNames": [ns]}, "ServiceMonitor namespace")
check(sm["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "scheme": "http", "interval": "1m", "scrapeTimeout": "10s"}],
      "ServiceMonitor endpoint")
check({p["name"] for p in svc["spec"]["ports"]} == {"http"}, "ServiceMonitor port exists on the Service")
pdb = one(d, "PodDisruptionBudget")
check(pdb["spec"] == {"maxUnavailable": "50%", "selector": {"matchLabels": dict(svc["spec"]["selector"])}}, "PDB")
check(pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items(), "PDB selects the Pods")
np = one(d, "NetworkPolicy")["spec"]
check(np["podSelector"]["matchLabels"].items() <= pod_labels.items(), "NetworkPolicy selects the Pods")
check(np["policyTypes"] == ["Ingress", "Egress"], "NetworkPolicy types")
check(len(np["ingress"]) == 1 and np["ingress"][0]["ports"] == [{"port": 8080, "protocol": "TCP"}], "ingress: 8080 only")
check(np["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "monitoring"}, "ingress peers")
ports = [sorted((p["port"], p["protocol"]) for p in rule["ports"]) for rule in np["egress"]]
check(ports == [[(53, "TCP"), (53, "UDP")], [(443, "TCP"), (6443, "TCP")], [(443, "TCP")], [(8443, "TCP")]], f"egress ports {ports}")
check(np["egress"][1]["to"] == [{"ipBlock": {"cidr": "10.0.0.1/32"}}, {"ipBlock": {"cidr": "fd00::1/128"}}], "API server CIDRs")
check(np["egress"][2]["to"] == [{"ipBlock": {"cidr": "104.18.0.0/16"}}], "provider CIDRs")
check(env(d)["KEYSMITH_LOG_FORMAT"] == "text" and env(d)["KEYSMITH_USAGE_INTERVAL"] == "1h30m", "all: env")

# An existing ServiceAccount: none created, the roles bound to the named one.
d = load("existing-sa")
check(not kinds(d, "ServiceAccount"), "serviceAccount.create=false: ServiceAccount rendered")
check(one(d, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "keysmith-existing", "SA name")
check(one(d, "ClusterRoleBinding")["subjects"][0]["name"] == "keysmith-existing", "binding subject")
check(one(d, "ClusterRole")["metadata"]["name"] == "ks", "fullnameOverride")
c = one(d, "Deployment")["spec"]["template"]["spec"]["containers"][0]
check(c["image"] == "ghcr.io/keysmith-dev/keysmith:dev" and c["imagePullPolicy"] == "Always", "image")
# The gateway: its own ServiceAccount with list/watch on Secrets in the release namespace and nothing else,
# one replica, restricted Pod security, and Pods that no selector of the operator's picks.
d = load("gateway")
gname = f"{full}-gateway"
gdep = one(d, "Deployment", gname)
gpod = gdep["spec"]["template"]
check(gdep["spec"]["replicas"] == 1, "gateway: one replica")
check(gpod["spec"]["serviceAccountName"] == gname, "gateway: its own ServiceAccount")
check(one(d, "ServiceAccount", gname)["metadata"]["namespace"] == ns, "gateway ServiceAccount namespace")
grole = one(d, "Role", gname)
check(grole["metadata"]["namespace"] == ns and grole["rules"] ==
      [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list", "watch"]}], f"gateway Role {grole['rules']}")
check(one(d, "RoleBinding", gname)["subjects"] == [{"kind": "ServiceAccount", "name": gname, "namespace": ns}], "gateway binding")
check(not [b for b in kinds(d, "ClusterRoleBinding") if any(s["name"] == gname for s in b["subjects"])], "gateway: nothing cluster-wide")
gc = gpod["spec"]["containers"][0]
genv = {e["name"]: e.get("value", e.get("valueFrom")) for e in gc["env"]}
check(genv["KEYSMITH_GATEWAY_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}, "gateway namespace env")
check(genv["KEYSMITH_GATEWAY_TOKENIZER"] == "exact", "gateway tokenizer env")
check(gc["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
      "capabilities": {"drop": ["ALL"]}}, "gateway container security")
check(gpod["spec"]["securityContext"]["runAsNonRoot"] is True, "gateway non-root")
gsvc = one(d, "Service", gname)
check(gsvc["spec"]["selector"].items() <= gpod["metadata"]["labels"].items(), "gateway Service selects its Pods")
check({p["name"]: p["port"] for p in gsvc["spec"]["ports"]} == {"proxy": 8080, "metrics": 9090}, "gateway ports")
op = one(d, "Deployment", full)["spec"]["template"]["metadata"]["labels"]
for what, sel in [("operator Service", one(d, "Service", f"{full}-metrics")["spec"]["selector"]),
                  ("operator PDB", one(d, "PodDisruptionBudget", full)["spec"]["selector"]["matchLabels"]),
                  ("operator NetworkPolicy", one(d, "NetworkPolicy", full)["spec"]["podSelector"]["matchLabels"])]:
    check(sel.items() <= op.items() and not sel.items() <= gpod["metadata"]["labels"].items(), f"{what} picks the operator only")
check(gsvc["spec"]["selector"].items() - op.items(), "the gateway Service does not pick the operator")
# The operator is told where the gateway is, and may reach its /usage.
oc = one(d, "Deployment", full)["spec"]["template"]["spec"]["containers"][0]
oenv = {e["name"]: e.get("value", e.get("valueFrom")) for e in oc["env"]}
check(oenv["KEYSMITH_GATEWAY_URL"] == f"http://{gname}.{ns}.svc:8080", f"operator gateway URL {oenv.get('KEYSMITH_GATEWAY_URL')}")
check(oenv["KEYSMITH_GATEWAY_USAGE_URL"] == f"http://{gname}.{ns}.svc:9090/usage", "operator gateway usage URL")
check(oenv["KEYSMITH_GATEWAY_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}, "operator gateway namespace")
check("KEYSMITH_GATEWAY_URL" not in env(load("default")), "default: no gateway URL")
onp = one(d, "NetworkPolicy", full)["spec"]
check(any(r.get("to") == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "keysmith-gateway",
      "app.kubernetes.io/instance": "keysmith-check"}}}] and [p["port"] for p in r["ports"]] == [9090]
      for r in onp["egress"]), f"operator egress to the gateway's /usage {onp['egress']}")
# The gateway's own NetworkPolicy, PDB and ServiceMonitor pick its Pods and nothing of the operator's.
gnp = one(d, "NetworkPolicy", gname)["spec"]
check(gnp["podSelector"]["matchLabels"].items() <= gpod["metadata"]["labels"].items(), "gateway NetworkPolicy selects its Pods")
check([[p["port"] for p in r["ports"]] for r in gnp["ingress"]] == [[8080], [9090]], f"gateway ingress ports {gnp['ingress']}")
check("from" not in gnp["ingress"][0], "gateway proxy open to apps by default")
check(gnp["ingress"][1]["from"][0]["podSelector"]["matchLabels"].items() <= op.items(), "gateway /usage open to the operator")
check([sorted(p["port"] for p in r["ports"]) for r in gnp["egress"]] == [[53, 53], [443, 6443], [443]], f"gateway egress {gnp['egress']}")
gpdb = one(d, "PodDisruptionBudget", gname)["spec"]
check(gpdb["selector"]["matchLabels"].items() <= gpod["metadata"]["labels"].items() and gpdb["maxUnavailable"] == 1, "gateway PDB")
gsm = one(d, "ServiceMonitor", gname)["spec"]
check(gsm["selector"]["matchLabels"].items() <= gsvc["metadata"]["labels"].items()
      and not gsm["selector"]["matchLabels"].items() <= one(d, "Service", f"{full}-metrics")["metadata"]["labels"].items(),
      "gateway ServiceMonitor selects the gateway Service only")
check(gsm["endpoints"][0]["port"] == "metrics", "gateway ServiceMonitor port")
# Watching listed namespaces, the operator may still write and delete route Secrets in the release namespace.
d = load("namespaced-gateway")
cred = one(d, "Role", f"{full}-credentials")
check(cred["rules"] == [{"apiGroups": [""], "resources": ["secrets"],
      "verbs": ["get", "list", "watch", "create", "patch", "delete"]}], f"namespaced gateway: route Secrets {cred['rules']}")
check(not kinds(load("default"), "Deployment")[1:], "default: no gateway")
print("[chart] rendered objects checked: env, RBAC per mode, Service/ServiceMonitor/PDB/NetworkPolicy selectors and ports, the gateway")
PY
# The default NetworkPolicy: no peers and no CIDRs, so no `from`/`to` (any address) but only the listed ports.
helm template keysmith-check "$chart" --namespace "$ns" --set networkPolicy.enabled=true \
  --show-only templates/networkpolicy.yaml | python3 -c '
import sys, yaml
np = yaml.safe_load(sys.stdin)["spec"]
rules = np["ingress"] + np["egress"]
assert all("from" not in r and "to" not in r for r in rules), "default NetworkPolicy restricts peers"
assert [sorted(p["port"] for p in r["ports"]) for r in np["egress"]] == [[53, 53], [443, 6443], [443]], np["egress"]'
log "7 modes validated by the apiserver (server-side dry run) and checked ($((SECONDS - start))s)"

# 4. RBAC installed for real.
"$here/rbac-check.sh"
log "chart checks passed in $((SECONDS - start))s"
