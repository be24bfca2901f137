"""The Grafana dashboard (deploy/grafana/dashboards/voxmesh.json, copied into the monitoring component):
it shows what the issue asks for, and every series it queries is one the services export (a renamed
metric breaks this test rather than a panel)."""

from __future__ import annotations

import json

import pytest

from tests.deploy.helpers import K8S, ROOT, metric_names, metrics_in

DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "voxmesh.json"
COPY = K8S / "components" / "monitoring" / "voxmesh-dashboard.json"


def panels() -> list[dict]:
    out = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def exprs() -> list[str]:
    return [t["expr"] for p in panels() for t in p.get("targets", [])]


def test_the_monitoring_component_carries_the_same_dashboard():
    assert COPY.read_bytes() == DASHBOARD.read_bytes(), (
        f"{COPY.relative_to(ROOT)} differs from {DASHBOARD.relative_to(ROOT)}: "
        f"cp {DASHBOARD.relative_to(ROOT)} {COPY.relative_to(ROOT)}"
    )


def test_every_queried_series_is_exported_by_a_service():
    exported = metric_names()
    assert "voxmesh_gateway_speech_end_to_final_seconds_bucket" in exported  # the registry was read
    unknown = {m for e in exprs() for m in metrics_in(e)} - exported
    assert not unknown, f"the dashboard queries series no service exports: {sorted(unknown)}"


@pytest.mark.parametrize(
    "metric",
    [
        "voxmesh_gateway_speech_end_to_final_seconds",
        "voxmesh_gateway_final_to_processed_seconds",
        "voxmesh_gateway_mesh_overhead_seconds",
    ],
)
def test_latencies_users_feel_show_p50_p95_p99(metric):
    quantiles = {
        e.split("(")[1].split(",")[0] for e in exprs() if f"{metric}_bucket" in e and "histogram_quantile" in e
    }
    assert quantiles >= {"0.5", "0.95", "0.99"}, f"{metric}: quantiles shown {quantiles}"


@pytest.mark.parametrize(
    "needle",
    [
        "sum by (le, hop) (rate(voxmesh_gateway_hop_seconds_bucket",  # per-hop latency
        "voxmesh_gateway_active_streams",  # active streams
        "rate(voxmesh_rpc_errors_total",  # error rates
        "rate(voxmesh_utterance_errors_total",
        "voxmesh_asr_batch_size_bucket",  # ASR batch sizes
        "voxmesh_asr_queue_depth",  # queue depth
        "voxmesh_llm_pending",
        "voxmesh_vad_answers_total",  # the VAD's messages per second of audio
    ],
)
def test_dashboard_shows(needle):
    assert any(needle in e for e in exprs()), f"no panel queries {needle}"


def test_panels_are_well_formed():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "voxmesh"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in panels()]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in panels():
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"] and panel.get("description"), panel["title"]
        for target in panel["targets"]:
            expr = target["expr"]
            for opening, closing in ("()", "[]", "{}"):
                assert expr.count(opening) == expr.count(closing), f"{panel['title']}: unbalanced {expr}"
