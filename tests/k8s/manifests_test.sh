#!/usr/bin/env bash
# Checks k8s/base and k8s/rootless (tests/k8s/manifests_test.py). Usage: manifests_test.sh BIN_DIR
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
python3 -c 'import yaml' 2>/dev/null || { echo "FAIL k8s: python3-yaml is not installed"; exit 1; }
# Kubernetes' API schemas, compiled by the kubernetes-models package (npm),
# validate what kustomize renders; installed once into a cache outside the
# tree.
MODELS=${STAGEFARM_K8S_MODELS:-$HOME/.cache/stagefarm/kubernetes-models}
if [ ! -f "$MODELS/node_modules/kubernetes-models/package.json" ] && command -v npm >/dev/null; then
  mkdir -p "$MODELS" &&
    npm install --prefix "$MODELS" --no-audit --no-fund --loglevel=error kubernetes-models@5.1.0 >/dev/null 2>&1 ||
    echo "k8s: npm install kubernetes-models@5.1.0 failed"
fi
export STAGEFARM_K8S_MODELS=$MODELS
exec python3 "$ROOT/tests/k8s/manifests_test.py" "$ROOT" "$1"
