#!/usr/bin/env bash
# Build the CPU image from docker/Dockerfile.cpu and bring the compose stack up (make compose-up).
#
# With a Docker engine: `docker compose --profile observability up --build -d`, the stock images for
# Prometheus, Grafana and Jaeger; nothing else changes. Without one (this project's machines): podman, after
# the one-time `sudo deploy/setup-podman.sh`, building on its local Debian base image, with Prometheus from
# Debian's package (deploy/compose.local.yml); Grafana and Jaeger are left out, since their images come
# from public registries, which these machines cannot reach, and the script says so.
#
#   deploy/run-local.sh            # up, and wait until the gateway and the web service say SERVING
#   deploy/run-local.sh down       # stop and remove the stack
set -euo pipefail
cd "$(dirname "$0")/.."

SERVICES=(vad asr llm gateway web prometheus)
BASE_IMAGE=${BASE_IMAGE:-localhost/debian-python:bookworm}
IMAGE=voxmesh-cpu:0.1.0
SLIM=voxmesh-cpu-slim:0.1.0
say() { printf 'run-local: %s\n' "$*"; }

if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  if [ "${1:-up}" = down ]; then exec docker compose -p voxmesh --profile observability down; fi
  say "Docker engine: building and starting the stack with the stock images"
  docker compose -p voxmesh --profile observability up --build -d
  engine=docker
else
  command -v podman >/dev/null && podman image exists "$BASE_IMAGE" || {
    say "no Docker engine answers, and podman is not set up: run 'sudo deploy/setup-podman.sh' once"
    exit 1
  }
  compose=(podman-compose -p voxmesh -f docker-compose.yml -f deploy/compose.local.yml)
  if [ "${1:-up}" = down ]; then exec "${compose[@]}" down; fi
  started=$(date +%s)
  say "podman: building $IMAGE on $BASE_IMAGE (registries are out of reach; pip reaches PyPI over the host network)"
  podman build --format docker --network host -v /etc/ssl/certs:/etc/ssl/certs:ro --build-arg PYTHON_IMAGE="$BASE_IMAGE" \
    -f docker/Dockerfile.cpu -t "$IMAGE" .
  podman build --format docker --network host -v /etc/ssl/certs:/etc/ssl/certs:ro --build-arg PYTHON_IMAGE="$BASE_IMAGE" \
    -f docker/Dockerfile.cpu --target slim -t "$SLIM" .
  podman build --format docker --network host -v /etc/ssl/certs:/etc/ssl/certs:ro --build-arg BASE_IMAGE="$BASE_IMAGE" \
    -f deploy/prometheus/Dockerfile.debian -t voxmesh-prometheus:local deploy/prometheus
  size() { podman image inspect "$1" --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}'; }
  say "built in $(( $(date +%s) - started )) s: $IMAGE $(size "$IMAGE"), $SLIM $(size "$SLIM")"
  say "left out: grafana and jaeger (their images come from public registries, which this machine cannot reach)"
  "${compose[@]}" up -d "${SERVICES[@]}"
  engine=podman
fi

say "waiting for the gateway and the web service to say SERVING"
python=${PYTHON:-.venv/bin/python}
for target in 127.0.0.1:50051 127.0.0.1:8080; do
  for _ in $(seq 1 120); do
    if [ "$target" = 127.0.0.1:8080 ]; then
      curl -fsS "http://$target/healthz" >/dev/null 2>&1 && break
    else
      "$python" -m voxmesh health --gateway "$target" --timeout 2 >/dev/null 2>&1 && break
    fi
    sleep 2
  done
done
"$python" -m voxmesh health --gateway 127.0.0.1:50051
say "up ($engine): gateway at 127.0.0.1:50051, the page at http://127.0.0.1:8080/, Prometheus at http://127.0.0.1:9090/"
