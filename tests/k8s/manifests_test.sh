#!/usr/bin/env bash
# Checks k8s/base (tests/k8s/manifests_test.py). Usage: manifests_test.sh BIN_DIR
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
python3 -c 'import yaml' 2>/dev/null || { echo "FAIL k8s: python3-yaml is not installed"; exit 1; }
exec python3 "$ROOT/tests/k8s/manifests_test.py" "$ROOT" "$1"
