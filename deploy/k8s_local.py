"""Run the k8s `dev` overlay's Deployments as containers, with the rendered args and environment.

No cluster runs on this project's machines, so the manifests are otherwise only validated offline. This
renders `kubectl kustomize k8s/overlays/dev`, and for each Deployment runs its container (the image built
here in place of the manifest's tag) with the manifest's args, the environment its ConfigMaps and env entries
give, a read-only root with each mounted volume as a tmpfs, and its Services' names as network aliases, on
one network. It waits until every service's native gRPC probe port says SERVING, prints the times, and
removes the containers: the manifests' settings start the services.

    python deploy/k8s_local.py [--engine podman|docker] [--image voxmesh-cpu:0.1.0]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import yaml

NETWORK = "voxmesh-k8s"


def render() -> list[dict]:
    out = subprocess.run(["kubectl", "kustomize", "k8s/overlays/dev"], check=True, capture_output=True, text=True)
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default="podman")
    parser.add_argument("--image", default="voxmesh-cpu:0.1.0")
    args = parser.parse_args()
    engine = args.engine
    docs = render()
    maps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    services = [d for d in docs if d["kind"] == "Service"]
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    subprocess.run([engine, "network", "create", NETWORK], capture_output=True)
    names = []
    try:
        for deployment in deployments:
            labels = deployment["spec"]["template"]["metadata"]["labels"]
            pod = deployment["spec"]["template"]["spec"]
            box = pod["containers"][0]
            env: dict[str, str] = {}
            for source in box.get("envFrom", []):
                env.update(maps[source["configMapRef"]["name"]])
            env.update({item["name"]: str(item["value"]) for item in box.get("env", []) if "value" in item})
            aliases = [
                s["metadata"]["name"]
                for s in services
                if all(labels.get(k) == v for k, v in s["spec"].get("selector", {}).items())
            ]
            name = f"k8s-{deployment['metadata']['name']}"
            names.append(name)
            command = [engine, "run", "-d", "--name", name, "--network", NETWORK, "--read-only"]
            for alias in aliases:
                command += ["--network-alias", alias]
            for mount in box.get("volumeMounts", []):
                command += ["--tmpfs", mount["mountPath"]]
            for key, value in env.items():
                command += ["-e", f"{key}={value}"]
            subprocess.run([engine, "rm", "-f", name], capture_output=True)
            subprocess.run([*command, args.image, *box["args"]], check=True, capture_output=True)
            print(f"{name}: {' '.join(box['args'])}; aliases {', '.join(aliases)}; {len(env)} settings", flush=True)
        began = time.monotonic()
        waiting = {
            f"k8s-{d['metadata']['name']}": d["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpc"][
                "port"
            ]
            for d in deployments
        }
        while waiting:
            for name, port in list(waiting.items()):
                probe = subprocess.run(
                    [engine, "exec", name, "voxmesh", "health", "--gateway", f"127.0.0.1:{port}", "--timeout", "2"],
                    capture_output=True,
                )
                if probe.returncode == 0:
                    print(f"{name} SERVING on its probe port {port}, {time.monotonic() - began:.1f} s", flush=True)
                    del waiting[name]
            if waiting and time.monotonic() - began > 300:
                for name in waiting:
                    logs = subprocess.run([engine, "logs", "--tail", "20", name], capture_output=True, text=True)
                    print(f"--- {name}\n{logs.stdout}{logs.stderr}")
                return 1
            time.sleep(1)
        print("the dev overlay's containers all say SERVING")
        return 0
    finally:
        for name in names:
            subprocess.run([engine, "rm", "-f", name], capture_output=True)
        subprocess.run([engine, "network", "rm", NETWORK], capture_output=True)


if __name__ == "__main__":
    sys.exit(main())
