"""make deploy-e2e: the deployment for real, on this machine (kept out of `make test`: a build takes minutes).

0. sets up podman when no Docker engine answers (deploy/setup-podman.sh, which needs root the first time and
   does nothing after);
1. builds the CPU image and brings the compose stack up (deploy/run-local.sh: Docker, or podman after the
   one-time `sudo deploy/setup-podman.sh`), and reports the image's size and each service's time to SERVING;
2. transcribes the real speech in ../shared/audio through the gateway container (`voxmesh transcribe
   --gateway`), and checks the text;
3. adds a second ASR replica (same network alias), SIGKILLs the first mid-stream, and checks that every
   utterance still gets exactly one final;
4. scrapes each container's /metrics, and asks Prometheus (Debian's, in an image built here, or the stock
   one) that it scrapes all five;
5. renders the k8s `dev` overlay and runs its Deployments' containers with the rendered args and
   environment (their Services' names as network aliases), and waits until the gateway says SERVING.

It prints a report (docs/deployment.md shows one) and exits non-zero on the first failure.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from voxmesh import text  # noqa: E402

ENGINE = (
    "docker"
    if shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True).returncode == 0
    else "podman"
)
PORTS = {"vad": 50052, "asr": 50053, "llm": 50054, "gateway": 50051, "web": 50055}
METRICS = {"gateway": 9100, "vad": 9101, "asr": 9102, "llm": 9103, "web": 9104}
SHARED = ROOT.parent / "shared" / "audio"
IMAGE = "voxmesh-cpu:0.1.0"
SLIM = "voxmesh-cpu-slim:0.1.0"  # gateway, vad, llm and web
# jfk.flac ships without a reference text beside it; its words are well known (public domain).
KNOWN = {
    "jfk.flac": "And so my fellow Americans, ask not what your country can do for you, "
    "ask what you can do for your country."
}


def run(*command: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=check, capture_output=True, text=True, **kwargs)


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def container(service: str, index: int = 1) -> str:
    """The compose container's name: docker compose v2 and podman-compose both use voxmesh[-_]SERVICE[-_]1."""
    names = run(ENGINE, "ps", "--format", "{{.Names}}").stdout.split()
    for name in names:
        if name in (f"voxmesh-{service}-{index}", f"voxmesh_{service}_{index}"):
            return name
    raise SystemExit(f"no running container for {service}: {names}")


def healthy(name: str, port: int) -> bool:
    probe = run(
        ENGINE, "exec", name, "voxmesh", "health", "--gateway", f"127.0.0.1:{port}", "--timeout", "2", check=False
    )
    return probe.returncode == 0


def exec_python(name: str, code: str) -> str:
    return run(ENGINE, "exec", name, "python", "-c", code).stdout


def transcribe(path: Path, *flags: str) -> list[dict]:
    done = run(
        sys.executable, "-m", "voxmesh", "transcribe", str(path), "--gateway", "127.0.0.1:50051", "--json",
        "--no-post-processing", *flags, timeout=600,
    )  # fmt: skip
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def main() -> int:
    if ENGINE == "podman":
        step("the container engine (deploy/setup-podman.sh: nothing to do once it is set up)")
        subprocess.run([str(ROOT / "deploy" / "setup-podman.sh")], check=True)
    step(f"build and start the stack ({ENGINE})")
    subprocess.run([str(ROOT / "deploy" / "run-local.sh"), "down"], capture_output=True)  # from nothing
    started = time.monotonic()
    up = subprocess.run([str(ROOT / "deploy" / "run-local.sh")], env={"PYTHON": sys.executable, "PATH": _path()})
    if up.returncode:
        return up.returncode
    print(f"build and start: {time.monotonic() - started:.0f} s")
    for image in (IMAGE, SLIM):
        size = run(ENGINE, "image", "inspect", image, "--format", "{{.Size}}").stdout.strip()
        print(f"image {image}: {int(size) / 1e6:.0f} MB")

    step("time to SERVING, per service (from the container's start, restarted here to measure)")
    for service, port in PORTS.items():
        name = container(service)
        run(ENGINE, "restart", name)
        begun = time.monotonic()
        while not healthy(name, port):
            if time.monotonic() - begun > 300:
                raise SystemExit(f"{service} never said SERVING")
            time.sleep(0.25)
        print(f"{service:<8} SERVING {time.monotonic() - begun:5.1f} s after its restart")
    _wait_gateway()

    step("real speech through the gateway container")
    for path in sorted(SHARED.glob("*.flac")):
        events = transcribe(path, "--pace", "fast")
        said = " ".join(e["text"] for e in events if e["type"] == "final")
        reference_file = path.with_suffix(".txt")
        reference = reference_file.read_text() if reference_file.exists() else KNOWN.get(path.name)
        if reference is None:
            print(f"{path.name}: no reference text; skipped")
            continue
        wer = text.wer(reference, said)
        print(f"{path.name}: {len([e for e in events if e['type'] == 'final'])} finals, WER {wer:.3f}: {said[:90]}")
        if wer > 0.25:
            raise SystemExit(f"{path.name}: WER {wer:.3f} is too high")

    step("two ASR replicas, one SIGKILLed mid-stream")
    first = container("asr")
    network = run(
        ENGINE, "inspect", first, "--format", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}"
    ).stdout.split()[0]
    second = "voxmesh-asr-extra"
    run(ENGINE, "rm", "-f", second, check=False)
    run(
        ENGINE, "run", "-d", "--name", second, "--network", network, "--network-alias", "asr", "--read-only",
        "--tmpfs", "/tmp", IMAGE, "serve", "asr",
    )  # fmt: skip
    while not healthy(second, PORTS["asr"]):
        time.sleep(0.5)
    stream = subprocess.Popen(
        [sys.executable, "-m", "voxmesh", "transcribe", str(ROOT / "samples" / "welcome.flac"), "--gateway",
         "127.0.0.1:50051", "--json", "--no-post-processing"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(6)  # mid-stream: the first two sentences are in
    run(ENGINE, "kill", "--signal", "KILL", first)
    out, _ = stream.communicate(timeout=300)
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    finals = [e["utterance"] for e in events if e["type"] == "final"]
    errors = [e for e in events if e["type"] == "error"]
    print(f"finals per utterance: {finals}; errors: {len(errors)}")
    if finals != sorted(set(finals)) or len(finals) != 4 or errors:
        raise SystemExit("an utterance did not get exactly one final")
    run(ENGINE, "start", first)
    run(ENGINE, "rm", "-f", second)

    step("/metrics of each container, and Prometheus's view")
    for service, port in METRICS.items():
        name = container(service)
        body = exec_python(
            name,
            f"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:{port}/metrics').read().decode())",
        )
        families = {line.split()[2] for line in body.splitlines() if line.startswith("# TYPE voxmesh_")}
        print(f"{service:<8} /metrics: {len(families)} voxmesh families")
    time.sleep(12)  # two scrape intervals after the ASR came back
    reply = json.load(urllib.request.urlopen("http://127.0.0.1:9090/api/v1/query?query=up", timeout=10))
    up = {r["metric"]["job"]: r["value"][1] for r in reply["data"]["result"]}
    print(f"prometheus up: {up}")
    if any(up.get(f"voxmesh-{s}") != "1" for s in METRICS):
        raise SystemExit("Prometheus does not scrape every voxmesh service")

    step("the k8s dev overlay's containers, run with the rendered args and environment")
    subprocess.run([sys.executable, str(ROOT / "deploy" / "k8s_local.py"), "--engine", ENGINE], check=True)
    print("\ndeploy-e2e: every step passed")
    return 0


def _path() -> str:
    import os

    return os.environ.get("PATH", "")


def _wait_gateway() -> None:
    for _ in range(120):
        if run(sys.executable, "-m", "voxmesh", "health", "--gateway", "127.0.0.1:50051", check=False).returncode == 0:
            return
        time.sleep(1)
    raise SystemExit("the gateway never said SERVING")


if __name__ == "__main__":
    raise SystemExit(main())
