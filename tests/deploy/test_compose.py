"""The docker-compose files: valid against the Compose specification (offline), and wired as the services
expect: settings that exist, healthchecks on the gRPC health service at each service's real port, start
order on health, GPU reservations and a model cache in the GPU override."""

from __future__ import annotations

import re
import shutil

import pytest
import yaml

from tests.deploy.helpers import (
    COMPOSE_FILES,
    HF_HOME,
    ROOT,
    SERVICES,
    effective_settings,
    run,
    settings_problems,
    tool,
)

BASE, GPU = COMPOSE_FILES


def load(path):
    return yaml.safe_load(path.read_text())


def merge(base, override):
    """The override applied to the base as `docker compose -f base -f override` does for the keys used
    here: mappings merge key by key, anything else is replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = merge(base[key], value) if key in base else value
        return out
    return override


STACKS = {"cpu": load(BASE), "gpu": merge(load(BASE), load(GPU))}


def duration_s(text: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", str(text))
    assert parts and "".join(n + u for n, u in parts) == str(text), f"not a compose duration: {text!r}"
    return sum(float(n) * units[u] for n, u in parts)


# ---- validation ------------------------------------------------------------------------------------------


def check_jsonschema(*paths) -> None:
    exe = tool("check-jsonschema", "pip install check-jsonschema (a test dependency)")
    result = run([exe, "--builtin-schema", "vendor.compose-spec", *map(str, paths)])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_file_matches_the_compose_spec(path):
    check_jsonschema(path)


def test_merged_gpu_stack_matches_the_compose_spec(tmp_path):
    merged = tmp_path / "merged.yml"
    merged.write_text(yaml.safe_dump(STACKS["gpu"]))
    check_jsonschema(merged)


def test_the_schema_check_can_fail(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(BASE.read_text().replace("    healthcheck:\n", "    healthchek:\n", 1))
    exe = tool("check-jsonschema", "pip install check-jsonschema (a test dependency)")
    result = run([exe, "--builtin-schema", "vendor.compose-spec", str(bad)])
    assert result.returncode != 0 and "healthchek" in result.stdout


@pytest.mark.parametrize("files", [[BASE], [BASE, GPU]], ids=["cpu", "cpu+gpu"])
def test_docker_compose_config_accepts_the_stack(files):
    """Debian's docker-compose (1.29), where it is installed: the same check with Compose's own loader."""
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.skip("docker-compose is not installed (Debian package docker-compose); check-jsonschema covers the spec")
    args = [exe]
    for f in files:
        args += ["-f", str(f)]
    result = run([*args, "config", "-q"], cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


# ---- the services --------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_environment_names_real_settings(stack):
    problems = []
    for name, service in STACKS[stack]["services"].items():
        problems += settings_problems(service.get("environment", {}), f"{stack} compose service {name}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("stack", STACKS)
def test_every_service_has_a_healthcheck_on_its_grpc_health_port(stack):
    services = STACKS[stack]["services"]
    for name, service in services.items():
        assert "healthcheck" in service and service["healthcheck"]["test"], f"{name} has no healthcheck"
    for name in SERVICES:
        service = services[name]
        assert service["command"] == ["serve", name]
        port = effective_settings(name, service.get("environment", {})).port
        assert service["healthcheck"]["test"][:5] == ["CMD", "voxmesh", "health", "--gateway", f"127.0.0.1:{port}"]


def test_the_gateway_starts_once_the_inner_services_are_healthy():
    for stack in STACKS.values():
        gateway = stack["services"]["gateway"]
        assert gateway["depends_on"] == {name: {"condition": "service_healthy"} for name in ("vad", "asr", "llm")}
        assert stack["services"]["grafana"]["depends_on"] == {"prometheus": {"condition": "service_healthy"}}


@pytest.mark.parametrize("stack", STACKS)
def test_gateway_targets_are_the_inner_services(stack):
    services = STACKS[stack]["services"]
    gateway = effective_settings("gateway", services["gateway"]["environment"])
    for name in ("vad", "asr", "llm"):
        port = effective_settings(name, services[name].get("environment", {})).port
        assert getattr(gateway, f"{name}_target") == f"dns:///{name}:{port}"


@pytest.mark.parametrize("stack", STACKS)
def test_stop_grace_outlasts_drain_delay_and_grace(stack):
    for name in SERVICES:
        service = STACKS[stack]["services"][name]
        settings = effective_settings(name, service.get("environment", {}))
        assert duration_s(service["stop_grace_period"]) > settings.drain_delay_s + settings.grace_s, name


def test_only_the_gateway_and_the_dashboards_are_published():
    for stack in STACKS.values():
        published = {name for name, s in stack["services"].items() if s.get("ports")}
        assert published == {"gateway", "web", "prometheus", "grafana", "jaeger"}


@pytest.mark.parametrize("stack", STACKS)
def test_every_service_sends_its_traces_to_the_stacks_jaeger(stack):
    services = STACKS[stack]["services"]
    for name in SERVICES:
        assert effective_settings(name, services[name].get("environment", {})).otlp_endpoint == "http://jaeger:4317"


@pytest.mark.parametrize("stack", STACKS)
def test_voxmesh_containers_are_hardened(stack):
    for name in SERVICES:
        service = STACKS[stack]["services"][name]
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert "/tmp" in service["tmpfs"], name


def test_gpu_override_reserves_a_gpu_for_asr_and_llm_only():
    services = STACKS["gpu"]["services"]
    for name in ("asr", "llm"):
        devices = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert len(devices) == 1 and devices[0]["driver"] == "nvidia" and devices[0]["capabilities"] == ["gpu"]
        assert services[name]["image"].startswith("voxmesh-gpu:")
        assert services[name]["build"]["dockerfile"] == "docker/Dockerfile.gpu"
        assert f"model-cache:{HF_HOME}" in services[name]["volumes"]
        assert duration_s(services[name]["healthcheck"]["start_period"]) >= 600, "model loading takes minutes"
        assert services[name]["shm_size"], "PyTorch needs more /dev/shm than Docker's 64 MB"
    for name in ("gateway", "vad"):
        assert "deploy" not in services[name] and services[name]["image"].startswith("voxmesh-cpu:")
    for name in ("asr", "llm"):
        assert "deploy" not in STACKS["cpu"]["services"][name], "the CPU stack reserves no GPU"
    assert "model-cache" in STACKS["gpu"]["volumes"]


def test_gpu_override_runs_the_gpu_engines():
    services = STACKS["gpu"]["services"]
    assert services["asr"]["environment"]["VOXMESH_ASR_ENGINE"] in {"voxtral", "voxtral-realtime"}
    assert services["asr"]["environment"]["VOXMESH_ASR_DEVICE"] == "cuda"
    assert services["llm"]["environment"]["VOXMESH_LLM_ENGINE"] == "transformers"
    assert STACKS["cpu"]["services"]["asr"]["environment"]["VOXMESH_ASR_ENGINE"] == "whisper"
    assert STACKS["cpu"]["services"]["llm"]["environment"]["VOXMESH_LLM_ENGINE"] == "rules"


def test_images_share_one_tag():
    tags = {
        s["image"].split(":")[1] for stack in STACKS.values() for n, s in stack["services"].items() if n in SERVICES
    }
    assert len(tags) == 1 and "latest" not in tags, tags


# ---- Prometheus and Grafana ------------------------------------------------------------------------------


def test_prometheus_scrapes_every_service_at_its_metrics_port():
    config = load(ROOT / "deploy" / "prometheus" / "prometheus.yml")
    targets = {}
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            for target in static["targets"]:
                targets[target] = job["job_name"]
    services = STACKS["cpu"]["services"]
    for name in SERVICES:
        port = effective_settings(name, services[name].get("environment", {})).metrics_port
        assert port, f"{name} exports no metrics"
        assert targets.get(f"{name}:{port}") == f"voxmesh-{name}", f"no scrape job for {name}:{port}"
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            # A target label `service` would clash with the services' own `service` label.
            assert "service" not in static.get("labels", {})


def test_grafana_is_provisioned_with_the_stacks_prometheus_and_the_dashboard():
    grafana = STACKS["cpu"]["services"]["grafana"]
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    datasources = load(provisioning / "datasources" / "prometheus.yml")["datasources"]
    assert datasources[0]["url"] == "http://prometheus:9090" and datasources[0]["type"] == "prometheus"
    provider = load(provisioning / "dashboards" / "voxmesh.yml")["providers"][0]
    mounts = dict(v.split(":")[:2][::-1] for v in grafana["volumes"] if v.startswith("./"))
    assert mounts[provider["options"]["path"]] == "./deploy/grafana/dashboards"
    assert mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == provider["options"]["path"] + "/voxmesh.json"
    assert (ROOT / "deploy" / "grafana" / "dashboards" / "voxmesh.json").exists()
    for volume in grafana["volumes"] + STACKS["cpu"]["services"]["prometheus"]["volumes"]:
        if volume.startswith("./"):
            assert (ROOT / volume.split(":")[0]).exists(), volume


def test_the_web_service_calls_the_gateway_once_it_is_healthy():
    for stack in STACKS.values():
        web = stack["services"]["web"]
        assert web["command"] == ["serve", "web"]
        assert web["depends_on"] == {"gateway": {"condition": "service_healthy"}}
        settings = effective_settings("web", web["environment"])
        gateway = effective_settings("gateway", stack["services"]["gateway"]["environment"])
        assert settings.gateway_target == f"dns:///gateway:{gateway.port}"
        assert web["healthcheck"]["test"][:5] == ["CMD", "voxmesh", "health", "--gateway", f"127.0.0.1:{settings.port}"]
        assert web["ports"] == [f"${{PUBLISH_HOST:-127.0.0.1}}:{settings.http_port}:{settings.http_port}"]
