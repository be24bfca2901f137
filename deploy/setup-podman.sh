#!/usr/bin/env bash
# One-time container engine setup, as root, for a Debian machine with no Docker engine (this project's own
# machines): Debian's podman with the runc runtime, and a Python base image made with debootstrap, since
# public registries cannot be reached. It prints every file it changes; with a Docker or Podman engine that
# already runs containers, it does nothing.
#
#   sudo deploy/setup-podman.sh        # then: make compose-up, make deploy-e2e
set -euo pipefail

BASE_IMAGE=${BASE_IMAGE:-localhost/debian-python:bookworm}
MIRROR=${MIRROR:-$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
CONF=/etc/containers/containers.conf

say() { printf 'setup-podman: %s\n' "$*"; }

if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  say "a Docker engine answers (docker info): nothing to do"
  exit 0
fi
if command -v podman >/dev/null && podman image exists "$BASE_IMAGE" 2>/dev/null \
   && podman run --rm --network none "$BASE_IMAGE" true >/dev/null 2>&1; then
  say "podman already runs containers from $BASE_IMAGE: nothing to do"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  say "run me as root: I install Debian packages and write $CONF"
  exit 1
fi

missing=()
for tool in podman runc debootstrap podman-compose; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} (Debian packages)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# runc, not crun (crun fails on this machine's hybrid cgroups), and explicit rlimits (setting the engine's
# defaults is refused here).
mkdir -p "$(dirname "$CONF")"
touch "$CONF"
if ! grep -q '^runtime = "runc"' "$CONF"; then
  python3 - "$CONF" <<'PY'
import re, sys
path = sys.argv[1]
text = open(path).read()
def put(text, table, line):
    if f"[{table}]" not in text:
        text = text.rstrip() + f"\n\n[{table}]\n"
    return re.sub(rf"(\[{table}\]\n)", rf"\1{line}\n", text, count=1)
text = put(text, "engine", 'runtime = "runc"')
text = put(text, "containers", 'default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]')
open(path, "w").write(text)
PY
  say "changed $CONF: runtime = \"runc\" under [engine], default_ulimits under [containers]"
fi

if ! podman image exists "$BASE_IMAGE"; then
  rootfs=$(mktemp -d /var/tmp/debian-python.XXXXXX)
  say "building $BASE_IMAGE with debootstrap from $MIRROR (about a minute)"
  debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
    bookworm "$rootfs" "$MIRROR" >/dev/null
  tar -C "$rootfs" -c . | podman import --change 'CMD ["python3"]' - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
  say "imported $BASE_IMAGE (podman's image store: /var/lib/containers/storage)"
fi
podman run --rm --network none "$BASE_IMAGE" python -c 'print("setup-podman: python runs in a container")'
