"""The Kubernetes manifests: every overlay renders with `kubectl kustomize`, validates with
kubernetes-validate --strict against the Kubernetes versions stated below, its custom resources match the
Prometheus operator's and KEDA's schemas, and the rendered objects do what the mesh needs."""

from __future__ import annotations

import re

import pytest

from tests.deploy.helpers import (
    HF_HOME,
    RENDERINGS,
    SERVICES,
    by_kind,
    configmap_env,
    container,
    deployments,
    metric_names,
    metrics_in,
    module,
    pod_spec,
    rendered,
    settings_of,
    settings_problems,
    uses_tls,
)

# The oldest Kubernetes the manifests are written for, and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.31", "1.37")
# Custom resources, validated against the models of their CRDs below instead of Kubernetes' own schemas.
CUSTOM_KINDS = {("monitoring.coreos.com/v1", "PodMonitor"), ("keda.sh/v1alpha1", "ScaledObject")}
NAMESPACES = {"dev": "voxmesh-dev", "gpu": "voxmesh", "gpu-tls": "voxmesh"}
KV_INSTALL = "pip install kubernetes-validate (a test dependency)"

overlays = pytest.mark.parametrize("name", list(RENDERINGS))


# ---- validation ------------------------------------------------------------------------------------------


@overlays
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifests_validate_strictly(name, version):
    kubernetes_validate = module("kubernetes_validate.utils", KV_INSTALL)
    errors = []
    for doc in rendered(name):
        if (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {'.'.join(map(str, exc.path))}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            errors.append(
                f"{doc['kind']}/{doc['metadata']['name']}: {exc.message} (neither built in nor in CUSTOM_KINDS)"
            )
    assert not errors, "\n".join(errors)


def test_strict_validation_can_fail():
    kubernetes_validate = module("kubernetes_validate.utils", KV_INSTALL)
    deployment = dict(deployments("dev")["asr"])
    spec = dict(deployment["spec"], replica=2)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(dict(deployment, spec=spec), KUBERNETES_VERSIONS[0], strict=True)


def _dropped(given, parsed, path=""):
    """Fields of `given` that the model dropped or changed (an unknown field, a wrong shape)."""
    if isinstance(given, dict) and isinstance(parsed, dict):
        out = []
        for key, value in given.items():
            if key not in parsed:
                out.append(f"{path}.{key}: not in the CRD's schema")
            else:
                out += _dropped(value, parsed[key], f"{path}.{key}")
        return out
    if isinstance(given, list) and isinstance(parsed, list) and len(given) == len(parsed):
        return [d for i, (g, p) in enumerate(zip(given, parsed, strict=True)) for d in _dropped(g, p, f"{path}[{i}]")]
    return [] if given == parsed else [f"{path}: {given!r} became {parsed!r}"]


def crd_model(doc: dict):
    if doc["kind"] == "PodMonitor":
        models = module("cloudcoil.models.prometheus_operator.v1", "pip install cloudcoil-models-prometheus-operator")
        return models.PodMonitor
    models = module("cloudcoil.models.keda.v1alpha1", "pip install cloudcoil-models-keda")
    return models.ScaledObject


@overlays
def test_custom_resources_match_their_crd_schemas(name):
    """PodMonitor (prometheus-operator 0.80 CRD) and ScaledObject (KEDA 2.16 CRD), through the typed models
    that cloudcoil generates from those CRDs: every field set must be one the CRD has, of its type."""
    problems = []
    for doc in rendered(name):
        if (doc["apiVersion"], doc["kind"]) not in CUSTOM_KINDS:
            continue
        model = crd_model(doc)
        parsed = model.model_validate(doc).model_dump(mode="json", by_alias=True, exclude_unset=True)
        problems += [f"{doc['kind']}/{doc['metadata']['name']}{p}" for p in _dropped(doc, parsed)]
    assert not problems, "\n".join(problems)


def test_crd_check_can_fail():
    docs = rendered("gpu")
    monitor = by_kind(docs, "PodMonitor")["voxmesh"]
    bad = dict(monitor, spec=dict(monitor["spec"], podMetricEndpoints=monitor["spec"]["podMetricsEndpoints"]))
    parsed = crd_model(bad).model_validate(bad).model_dump(mode="json", by_alias=True, exclude_unset=True)
    assert _dropped(bad, parsed) == [".spec.podMetricEndpoints: not in the CRD's schema"]


# ---- what the mesh needs ------------------------------------------------------------------------------------


@overlays
def test_every_service_has_its_deployment_service_account_configmap_and_pdb(name):
    docs = rendered(name)
    for service, deployment in deployments(name).items():
        full = deployment["metadata"]["name"]
        assert full == f"voxmesh-{service}"
        assert pod_spec(deployment)["serviceAccountName"] in by_kind(docs, "ServiceAccount")
        assert configmap_env(docs, deployment), f"{full} reads no settings"
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        pdbs = [
            p
            for p in by_kind(docs, "PodDisruptionBudget").values()
            if p["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        assert len(pdbs) == 1, f"{full}: {len(pdbs)} PodDisruptionBudgets"
        assert deployment["metadata"]["namespace"] == NAMESPACES[name]


@overlays
def test_configmaps_hold_only_real_settings(name):
    docs = rendered(name)
    problems = []
    for configmap in by_kind(docs, "ConfigMap").values():
        if "data" in configmap and any(k.startswith("VOXMESH_") for k in configmap["data"]):
            problems += settings_problems(configmap["data"], f"{name} ConfigMap {configmap['metadata']['name']}")
    for service, deployment in deployments(name).items():
        env = configmap_env(docs, deployment)
        prefix = f"VOXMESH_{service.upper()}_"
        stray = [k for k in env if k.startswith("VOXMESH_") and not k.startswith(prefix)]
        assert not stray, f"{service} is given another service's settings: {stray}"
    assert not problems, "\n".join(problems)


@overlays
def test_probes_on_every_container_ask_the_grpc_health_service(name):
    for service, deployment in deployments(name).items():
        c = container(deployment)
        settings = settings_of(name, service)
        port = settings.health_port if uses_tls(name, service) else settings.port
        declared = {p["containerPort"] for p in c["ports"]}
        assert {settings.port, settings.metrics_port} <= declared, f"{service}: ports {declared}"
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert c[probe]["grpc"] == {"port": port}, f"{service} {probe}: {c[probe]}"
        assert port in declared


def test_startup_probes_allow_for_model_loading():
    for name in RENDERINGS:
        for service, deployment in deployments(name).items():
            probe = container(deployment)["startupProbe"]
            budget = probe["periodSeconds"] * probe["failureThreshold"]
            needed = 600 if name.startswith("gpu") and service in ("asr", "llm", "gateway") else 120
            assert budget >= needed, f"{name} {service}: {budget} s to start"


@overlays
def test_termination_grace_outlasts_drain_delay_and_grace(name):
    for service, deployment in deployments(name).items():
        settings = settings_of(name, service)
        assert pod_spec(deployment)["terminationGracePeriodSeconds"] > settings.drain_delay_s + settings.grace_s, (
            service
        )


@overlays
def test_connections_age_out_so_new_replicas_get_streams(name):
    # Without an age, a caller's one HTTP/2 connection per replica never closes, DNS is never asked
    # again, and replicas added by a scale-up get no streams; a stream past the age's grace fails over.
    for service in SERVICES:
        settings = settings_of(name, service)
        assert 0 < settings.max_connection_age_s <= 900, service
        assert settings.max_connection_age_grace_s <= settings.max_connection_age_s, service


@overlays
def test_gateway_reaches_the_inner_services_through_their_headless_services(name):
    docs = rendered(name)
    services = by_kind(docs, "Service")
    found = deployments(name)
    gateway = settings_of(name, "gateway")
    for inner in ("vad", "asr", "llm"):
        target = getattr(gateway, f"{inner}_target")
        match = re.fullmatch(r"dns:///([a-z0-9-]+):(\d+)", target)
        assert match, f"{inner} target {target!r} is not a dns:/// name the round_robin policy can spread over"
        host, port = match.group(1), int(match.group(2))
        assert host in services, f"{target}: no Service {host}"
        svc = services[host]["spec"]
        assert svc.get("clusterIP") == "None", f"{host} is not headless"
        pod_labels = found[inner]["spec"]["template"]["metadata"]["labels"]
        assert svc["selector"].items() <= pod_labels.items(), f"{host} does not select voxmesh-{inner}'s pods"
        ports = {p["port"]: p for p in svc["ports"]}
        assert port in ports, f"{host} has no port {port}"
        assert port == settings_of(name, inner).port, f"{inner} listens on {settings_of(name, inner).port}"
        assert ports[port]["targetPort"] in {p["name"] for p in container(found[inner])["ports"]}


def test_gpu_limits_on_asr_and_llm_in_the_gpu_overlays_and_none_in_dev():
    for name in RENDERINGS:
        for service, deployment in deployments(name).items():
            resources = container(deployment)["resources"]
            gpus = resources["limits"].get("nvidia.com/gpu")
            if name.startswith("gpu") and service in ("asr", "llm"):
                assert gpus == 1, f"{name} {service}: nvidia.com/gpu {gpus}"
            else:
                assert gpus is None and "nvidia.com/gpu" not in resources["requests"], (
                    f"{name} {service} asks for a GPU"
                )


@pytest.mark.parametrize("name", ["gpu", "gpu-tls"])
def test_gpu_pods_land_on_gpu_nodes_with_shm_and_the_model_cache(name):
    docs = rendered(name)
    claims = by_kind(docs, "PersistentVolumeClaim")
    for service in ("asr", "llm"):
        deployment = deployments(name)[service]
        spec = pod_spec(deployment)
        assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in container(deployment)["volumeMounts"]}
        assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"
        claim = volumes[mounts[HF_HOME]]["persistentVolumeClaim"]["claimName"]
        assert claim in claims
        assert container(deployment)["image"].startswith("voxmesh-gpu:")
        env = configmap_env(docs, deployment)
        if service == "asr":
            assert env["VOXMESH_ASR_ENGINE"] in {"voxtral", "voxtral-realtime"} and env["VOXMESH_ASR_DEVICE"] == "cuda"
        else:
            assert env["VOXMESH_LLM_ENGINE"] == "transformers"
    for service in ("gateway", "vad"):
        deployment = deployments(name)[service]
        assert container(deployment)["image"].startswith("voxmesh-cpu:")
        assert "nodeSelector" not in pod_spec(deployment)


def test_dev_runs_the_embedded_cpu_engines_one_replica_each():
    docs = rendered("dev")
    for deployment in deployments("dev").values():
        assert deployment["spec"]["replicas"] == 1
        assert container(deployment)["image"].startswith("voxmesh-cpu:")
    assert configmap_env(docs, deployments("dev")["asr"])["VOXMESH_ASR_ENGINE"] == "whisper"
    assert configmap_env(docs, deployments("dev")["llm"])["VOXMESH_LLM_ENGINE"] == "rules"
    assert not by_kind(docs, "PersistentVolumeClaim") and not by_kind(docs, "NetworkPolicy")


def test_gpu_overlay_runs_several_gateway_and_vad_replicas():
    hpas = {
        h["spec"]["scaleTargetRef"]["name"]: h["spec"]
        for h in by_kind(rendered("gpu"), "HorizontalPodAutoscaler").values()
    }
    assert hpas["voxmesh-gateway"]["minReplicas"] >= 2 and hpas["voxmesh-vad"]["minReplicas"] >= 2


@pytest.mark.parametrize("name", ["gpu", "gpu-tls"])
def test_autoscaling_cpu_for_gateway_and_vad_queue_depth_for_asr_and_llm(name):
    docs = rendered(name)
    found = deployments(name)
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in by_kind(docs, "HorizontalPodAutoscaler").values()}
    assert set(hpas) == {"voxmesh-gateway", "voxmesh-vad"}
    for service in ("gateway", "vad"):
        hpa = hpas[f"voxmesh-{service}"]["spec"]
        assert hpa["metrics"][0]["resource"]["name"] == "cpu"
        assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"]
    for service, deployment in found.items():
        # The autoscalers own the counts: a replicas field would be re-applied over theirs.
        assert "replicas" not in deployment["spec"], f"{service} keeps spec.replicas beside its autoscaler"
    scaled = {s["spec"]["scaleTargetRef"]["name"]: s for s in by_kind(docs, "ScaledObject").values()}
    assert set(scaled) == {"voxmesh-asr", "voxmesh-llm"}
    exported = metric_names()
    for service, metric in (("asr", "voxmesh_asr_queue_depth"), ("llm", "voxmesh_llm_pending")):
        spec = scaled[f"voxmesh-{service}"]["spec"]
        assert spec["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
        (trigger,) = spec["triggers"]
        assert trigger["type"] == "prometheus" and trigger["metricType"] == "AverageValue"
        metadata = trigger["metadata"]
        assert set(metadata) <= {
            "serverAddress",
            "query",
            "threshold",
            "activationThreshold",
            "namespace",
            "ignoreNullValues",
            "unsafeSsl",
        }, metadata
        assert all(isinstance(v, str) for v in metadata.values()), "KEDA trigger metadata values are strings"
        assert float(metadata["threshold"]) > 0
        assert re.fullmatch(r"https?://[a-z0-9.-]+(:\d+)?", metadata["serverAddress"]), metadata["serverAddress"]
        assert metrics_in(metadata["query"]) == {metric} and metric in exported
        assert f'namespace="{NAMESPACES[name]}"' in metadata["query"], "the query reads another namespace"


@pytest.mark.parametrize("name", ["gpu", "gpu-tls"])
def test_podmonitor_scrapes_every_service(name):
    docs = rendered(name)
    (monitor,) = by_kind(docs, "PodMonitor").values()
    selector = monitor["spec"]["selector"]["matchLabels"]
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    for service, deployment in deployments(name).items():
        assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items(), service
        ports = {p["name"]: p["containerPort"] for p in container(deployment)["ports"]}
        assert ports[endpoint["port"]] == settings_of(name, service).metrics_port
    dashboards = [
        c for c in by_kind(docs, "ConfigMap").values() if c["metadata"].get("labels", {}).get("grafana_dashboard")
    ]
    assert len(dashboards) == 1 and "voxmesh.json" in dashboards[0]["data"]


@pytest.mark.parametrize("name", RENDERINGS)
def test_the_web_service_is_deployed_as_a_client_of_the_headless_gateway(name):
    from tests.deploy.helpers import web_deployment

    web = web_deployment(name)
    settings = settings_of(name, "web")
    assert settings.gateway_target == "dns:///voxmesh-gateway-headless:50051"
    ports = {p["name"]: p["containerPort"] for p in container(web)["ports"]}
    assert ports == {"http": settings.http_port, "grpc": settings.port, "metrics": settings.metrics_port}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container(web)[probe]["grpc"]["port"] == settings.port
