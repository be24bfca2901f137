#!/usr/bin/env bash
# The offline checks of the deployment files, with each tool's own output: hadolint on the Dockerfiles,
# the Compose specification on the compose files, `kubectl kustomize` + `kubernetes-validate --strict` on
# every overlay, then tests/deploy (which runs the same tools and checks what the rendered objects mean).
# No Docker engine and no cluster needed.
#
#   deploy/check.sh                   # with .venv (make's), or PYTHON=/path/to/venv/bin/python deploy/check.sh
#   K8S_VERSION=1.37 deploy/check.sh  # validate against another Kubernetes version (default 1.31)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
BIN=$(dirname "$PYTHON")
K8S_VERSION=${K8S_VERSION:-1.31}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== hadolint"
"$BIN/hadolint" --config docker/hadolint.yaml docker/Dockerfile.cpu docker/Dockerfile.gpu && echo ok

echo "== compose files against the Compose specification"
"$BIN/check-jsonschema" --builtin-schema vendor.compose-spec docker-compose.yml docker-compose.gpu.yml
if command -v docker-compose > /dev/null; then
    docker-compose -f docker-compose.yml config -q
    docker-compose -f docker-compose.yml -f docker-compose.gpu.yml config -q
    echo "docker-compose config: ok"
fi

echo "== overlays: kubectl kustomize | kubernetes-validate --strict -k $K8S_VERSION"
for dir in k8s/overlays/dev k8s/overlays/gpu tests/deploy/kustomize/gpu-tls; do
    kubectl kustomize "$dir" > "$tmp/rendered.yaml"
    # ScaledObject and PodMonitor have no schema here (a WARN line): tests/deploy checks them against their CRDs.
    "$BIN/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "$tmp/rendered.yaml"
    echo "$dir: ok"
done

echo "== tests/deploy"
"$PYTHON" -m pytest tests/deploy -q
