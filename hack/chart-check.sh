#!/usr/bin/env bash
# Checks the Helm chart: helm lint, then both RBAC modes rendered and validated by the real apiserver
# (server-side dry run: the OpenAPI schemas and admission, not a copy of them).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
"$here/cluster.sh" up >/dev/null
export KUBECONFIG=$("$here/cluster.sh" kubeconfig)
chart=$root/charts/keysmith
"$here/helm" lint --strict "$chart" >/dev/null
ns=keysmith-chart-check
"$here/kubectl" create namespace "$ns" --dry-run=client -o yaml | "$here/kubectl" apply -f - >/dev/null
for mode in "" "--set watchNamespace=$ns"; do
  # shellcheck disable=SC2086
  "$here/helm" template keysmith-check "$chart" --namespace "$ns" $mode |
    "$here/kubectl" apply --dry-run=server -n "$ns" -f - >/dev/null
done
"$here/kubectl" delete namespace "$ns" --wait=false >/dev/null
echo "[chart] lint and server-side validation passed (cluster-wide and namespaced RBAC)"
