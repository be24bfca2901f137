"""What the transformers engines (ASR and LLM) share: where the model runs, in which precision, with which
attention, and how a model directory or hub id becomes a clear start-up error when it cannot be loaded.

Imports torch only inside its functions, so importing this module costs nothing."""

from __future__ import annotations

import importlib.util
import logging
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from voxmesh import errors

log = logging.getLogger("voxmesh.torch")


@dataclass(frozen=True)
class Placement:
    device: str
    dtype: object  # torch.dtype
    attn_implementation: str


def placement(device_setting: str) -> Placement:
    """CUDA: bf16, flash-attn 2 when it is installed, else PyTorch's sdpa. CPU: fp32 and sdpa."""
    import torch

    fit_threads_to_quota(torch)
    device = device_setting
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise errors.FailedPrecondition("device is cuda but PyTorch sees no CUDA device; use --device cpu or auto")
    if device == "cuda":
        return Placement("cuda", torch.bfloat16, "flash_attention_2" if flash_attn_available() else "sdpa")
    return Placement("cpu", torch.float32, "sdpa")


CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def cpu_quota(path: Path = CPU_MAX) -> int | None:
    """CPUs the container may use, from cgroup v2's cpu.max ("quota period"), rounded up; None: no limit."""
    try:
        quota, period = path.read_text().split()[:2]
        return None if quota == "max" else max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        return None


def fit_threads_to_quota(torch) -> None:
    """torch sizes its CPU thread pool by the host's cores; in a container limited to fewer, the extra
    threads only contend (feature extraction and CPU inference slow down). Use the quota instead."""
    quota = cpu_quota()
    if quota is not None and quota < torch.get_num_threads():
        log.info("torch CPU threads set to the container's CPU quota", extra={"threads": quota})
        torch.set_num_threads(quota)


def flash_attn_available() -> bool:
    """transformers' own check (a `find_spec` can say yes where transformers then refuses); any failure to
    answer is a no."""
    try:
        from transformers.utils.import_utils import is_flash_attn_2_available

        return bool(is_flash_attn_2_available())
    except Exception:  # a broken flash-attn install raises anything on import
        return False


def load_model(model_cls, model_id: str, place: Placement) -> tuple[Any, Placement]:
    """`model_cls.from_pretrained` on its device, in eval mode. With accelerate installed (the voxtral extra
    has it) the weights load straight to the device (`device_map`), never whole in host memory first. If
    flash-attn fails to import there after all, the model loads with sdpa instead (said in the log), and
    the placement returned says so."""
    straight = importlib.util.find_spec("accelerate") is not None

    def load(place: Placement) -> Any:
        options: dict[str, Any] = {"dtype": place.dtype, "attn_implementation": place.attn_implementation}
        if straight:
            options["device_map"] = place.device
        model = model_cls.from_pretrained(model_id, **options)
        return (model if straight else model.to(place.device)).eval()

    try:
        return load(place), place
    except ImportError as exc:
        if place.attn_implementation != "flash_attention_2":
            raise
        log.warning("flash-attn would not load; using sdpa", extra={"error": str(exc)})
        place = replace(place, attn_implementation="sdpa")
        return load(place), place


def describe_source(model: str) -> str:
    """Where a model reference is looked for, for error messages."""
    if Path(model).exists() or model.startswith((".", "/", "~")):
        return f"the directory {model!r}"
    cache = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface")), "hub"
    )
    offline = " (HF_HUB_OFFLINE=1: the cache only)" if os.environ.get("HF_HUB_OFFLINE") == "1" else ""
    return f"the hub id {model!r} in the cache {cache}{offline}"


def check_local(model: str, setting: str) -> None:
    """A path-like reference must be a directory with a config.json; `setting` names where it was given."""
    path = Path(model).expanduser()
    if (model.startswith((".", "/", "~")) or path.exists()) and not (path / "config.json").is_file():
        raise errors.FailedPrecondition(f"model directory {model!r} does not exist or holds no config.json ({setting})")


def load_processor_and_model(model_cls, model_id: str, device_setting: str, setting: str, what: str):
    """An ASR model and its processor from a directory or hub id, placed by `placement`; a clear
    start-up error (naming where it looked) when either cannot be loaded."""
    from transformers import AutoProcessor

    check_local(model_id, setting)
    place = placement(device_setting)
    try:
        processor = AutoProcessor.from_pretrained(model_id)
        model, place = load_model(model_cls, model_id, place)
    except (OSError, ValueError) as exc:
        raise errors.FailedPrecondition(f"could not load the {what} from {describe_source(model_id)}: {exc}") from exc
    return processor, model, place
