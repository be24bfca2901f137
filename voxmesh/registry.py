"""The one idiom for registries of implementations named by setting: a name maps to "module:attribute",
and the module is imported only when that name is chosen, so that what one implementation needs (torch,
faster-whisper) is never imported for another. The CLI's services, the VAD's classifiers and the ASR and LLM
engines use it."""

from __future__ import annotations

import importlib
from typing import Any


def load(registry: dict[str, str], name: str) -> Any:
    """The attribute a registry names, imported on demand."""
    module, _, attribute = registry[name].partition(":")
    return getattr(importlib.import_module(module), attribute)
