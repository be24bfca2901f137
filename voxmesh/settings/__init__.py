"""Typed settings of every service, in one registry: one module per service beside the shared base.

Each field is read from `VOXMESH_<SERVICE>_<FIELD>` (e.g. `VOXMESH_ASR_BEAM_SIZE`) and from the flag
`--<field>` of `voxmesh serve <service>`; a flag wins over the environment, which wins over the default.
"""

from __future__ import annotations

from voxmesh.settings.asr import AsrSettings
from voxmesh.settings.base import ServiceSettings
from voxmesh.settings.flags import add_flags, from_flags, reference
from voxmesh.settings.gateway import GatewaySettings
from voxmesh.settings.llm import LlmSettings
from voxmesh.settings.vad import VadSettings
from voxmesh.settings.web import WebSettings

__all__ = [
    "SETTINGS",
    "AsrSettings",
    "GatewaySettings",
    "LlmSettings",
    "ServiceSettings",
    "VadSettings",
    "WebSettings",
    "add_flags",
    "from_flags",
    "reference",
]

SETTINGS: dict[str, type[ServiceSettings]] = {
    "vad": VadSettings,
    "asr": AsrSettings,
    "llm": LlmSettings,
    "gateway": GatewaySettings,
    "web": WebSettings,
}
