"""The Kubernetes manifests keep the mesh safe: hardened pods, network policies that open only the gateway,
TLS where the tls overlay says, and pinned images."""

from __future__ import annotations

import pytest

from tests.deploy.helpers import (
    RENDERINGS,
    SERVICES,
    by_kind,
    container,
    deployments,
    pod_spec,
    rendered,
    settings_of,
    uses_tls,
)

TLS_DIR = "/etc/voxmesh/tls"

overlays = pytest.mark.parametrize("name", list(RENDERINGS))


@overlays
def test_pods_are_hardened(name):
    """What the restricted Pod Security Standard asks, plus a read-only root and resource limits."""
    docs = rendered(name)
    for service, deployment in deployments(name).items():
        spec = pod_spec(deployment)
        assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] > 0
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert spec["automountServiceAccountToken"] is False
        assert not any(k.startswith("host") and v for k, v in spec.items()), f"{service} uses the host's namespaces"
        c = container(deployment)
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
        assert sc["readOnlyRootFilesystem"] is True and not sc.get("privileged")
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(c["resources"][kind]), f"{service} {kind}"
        for volume in spec["volumes"]:
            sources = set(volume) - {"name"}
            assert len(sources) == 1 and sources <= {
                "emptyDir",
                "configMap",
                "secret",
                "persistentVolumeClaim",
                "projected",
            }, f"{service} volume {volume}"
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        assert "/tmp" in mounts, f"{service}: a read-only root needs a writable /tmp"
    for namespace in by_kind(docs, "Namespace").values():
        assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("name", ["gpu", "gpu-tls"])
def test_network_policies_open_only_the_gateway(name):
    docs = rendered(name)
    policies = by_kind(docs, "NetworkPolicy").values()
    deny = [p for p in policies if p["spec"]["podSelector"] == {} and not p["spec"].get("ingress")]
    assert deny and deny[0]["spec"]["policyTypes"] == ["Ingress"], "no default deny of ingress"
    found = deployments(name)
    for service, deployment in found.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        mine = [
            p
            for p in policies
            if p["spec"]["podSelector"] and p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
        ]
        assert len(mine) == 1, f"{service}: {len(mine)} policies"
        settings = settings_of(name, service)
        by_port = {}
        for rule in mine[0]["spec"]["ingress"]:
            for port in rule["ports"]:
                by_port[port["port"]] = rule.get("from")
        assert set(by_port) == {settings.port, settings.metrics_port}
        if service == "gateway":
            assert by_port[settings.port] is None, "the gateway is open to every client"
        else:
            (peer,) = by_port[settings.port]
            assert peer == {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "voxmesh-gateway"}}}
            gateway_labels = found["gateway"]["spec"]["template"]["metadata"]["labels"]
            assert gateway_labels["app.kubernetes.io/name"] == "voxmesh-gateway"
        (prometheus,) = by_port[settings.metrics_port]
        assert set(prometheus) == {"namespaceSelector", "podSelector"}


def test_tls_component_mounts_the_secret_where_the_settings_point():
    docs = rendered("gpu-tls")
    for service, deployment in deployments("gpu-tls").items():
        settings = settings_of("gpu-tls", service)
        assert settings.tls_cert_file == f"{TLS_DIR}/tls.crt"
        assert settings.tls_key_file == f"{TLS_DIR}/tls.key"
        assert settings.tls_ca_file == f"{TLS_DIR}/ca.crt", "with a CA the services require client certificates"
        assert settings.health_port and settings.health_port != settings.port
        spec = pod_spec(deployment)
        volumes = {v["name"]: v for v in spec["volumes"]}
        (mount,) = [m for m in container(deployment)["volumeMounts"] if m["mountPath"] == TLS_DIR]
        assert mount["readOnly"] is True
        assert volumes[mount["name"]]["secret"]["secretName"] == "voxmesh-tls"
    assert settings_of("gpu-tls", "gateway").downstream_tls is True
    for name in ("dev", "gpu"):
        for service in SERVICES:
            assert not uses_tls(name, service) and settings_of(name, service).health_port == 0
    assert not by_kind(docs, "Secret"), "the certificate is not in the repository"


@overlays
def test_images_are_pinned(name):
    for deployment in deployments(name).values():
        image = container(deployment)["image"]
        repository, _, tag = image.rpartition(":")
        assert repository in {"voxmesh-cpu", "voxmesh-gpu"} and tag and tag != "latest", image
