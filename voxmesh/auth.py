"""API keys: who may call the gateway and the web service, and how many streams each may hold open.

Keys come from a file (`api_keys_file`) and from a setting (`api_keys`), one per entry:

    # key                  streams  calls (default: all)
    vm-3f9c1e0a7b2d44e1    8
    vm-partner-8d1a        2        Transcribe

`streams` bounds the calls a key holds open at once (0 or absent: no bound of its own); `calls` names the
methods it may make (StreamingTranscribe, Transcribe; the web service's /v1/realtime counts as
StreamingTranscribe and /v1/audio/transcriptions as Transcribe). The setting takes the same entries separated
by `;`. The file is read again when it changes (its modification time, looked at on each call at most once
a second), so a key removed from it is refused from then on, with no restart.

Callers send `authorization: Bearer <key>`. A missing, unknown or revoked key is UNAUTHENTICATED; a known key
making a call it is not allowed is PERMISSION_DENIED; a key over its stream bound is RESOURCE_EXHAUSTED.
Keys are compared as SHA-256 digests, each in constant time, and never logged: a key is named in logs by
the first 8 hex digits of its digest. With no keys configured, nothing is checked (the local stack's default).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from voxmesh import errors

log = logging.getLogger("voxmesh.auth")

METHODS = frozenset({"StreamingTranscribe", "Transcribe"})
RELOAD_EVERY_S = 1.0


@dataclass(frozen=True)
class Key:
    digest: bytes
    streams: int  # 0: no bound of its own
    calls: frozenset[str]

    @property
    def name(self) -> str:
        return self.digest.hex()[:8]


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def parse(text: str, source: str, separator: str = "\n") -> list[Key]:
    keys = []
    for number, line in enumerate(text.split(separator), start=1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        streams = 0
        if len(fields) > 1:
            if not fields[1].isdigit():
                raise errors.FailedPrecondition(
                    f"{source}, entry {number}: the stream bound {fields[1][:16]!r} is not a whole number"
                )
            streams = int(fields[1])
        calls = frozenset(fields[2].split(",")) if len(fields) > 2 else METHODS
        if unknown := calls - METHODS:
            raise errors.FailedPrecondition(
                f"{source}, entry {number}: unknown calls {', '.join(sorted(unknown))}; name "
                f"{' or '.join(sorted(METHODS))}"
            )
        keys.append(Key(_digest(fields[0]), streams, calls))
    return keys


@dataclass
class KeyRing:
    path: str = ""
    inline: str = ""
    _keys: list[Key] = field(default_factory=list)
    _mtime: float | None = None
    _checked: float = 0.0
    _open: dict[bytes, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._load()

    @property
    def enabled(self) -> bool:
        return bool(self.path or self.inline)

    def _load(self) -> None:
        keys = parse(self.inline, "VOXMESH_*_API_KEYS", ";") if self.inline else []
        if self.path:
            try:
                stat = os.stat(self.path)
                with open(self.path, encoding="utf-8") as file:
                    keys += parse(file.read(), self.path)
            except OSError as exc:
                raise errors.FailedPrecondition(f"cannot read the API key file {self.path}: {exc.strerror}") from exc
            self._mtime = stat.st_mtime
        self._keys = keys

    def _refresh(self) -> None:
        now = time.monotonic()
        if not self.path or now - self._checked < RELOAD_EVERY_S:
            return
        self._checked = now
        try:
            changed = os.stat(self.path).st_mtime != self._mtime
            if changed:
                self._load()
                log.info("API keys read again", extra={"keys": len(self._keys), "file": self.path})
        except errors.VoxmeshError as exc:  # a half-written or broken file: keep the keys we had
            log.warning("API key file not read again: %s", exc)
        except OSError:
            log.warning("API key file %s is gone; keeping the keys read before", self.path)

    def find(self, presented: str) -> Key | None:
        """The key whose digest matches, compared with every key in constant time."""
        digest, found = _digest(presented), None
        for key in self._keys:
            if hmac.compare_digest(digest, key.digest):
                found = key
        return found

    @contextlib.contextmanager
    def admit(self, authorization: str, call: str) -> Iterator[Key | None]:
        """Hold one of the key's streams for a call, or refuse it."""
        if not self.enabled:
            yield None
            return
        self._refresh()
        scheme, _, presented = authorization.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise errors.Unauthenticated(
                "an API key is required: send the metadata (or HTTP header) `authorization: Bearer <key>`"
            )
        key = self.find(presented.strip())
        if key is None:
            raise errors.Unauthenticated("the API key is not known here (or was revoked); ask for a valid key")
        if call not in key.calls:
            raise errors.PermissionDenied(
                f"this API key may not call {call}; it may call {', '.join(sorted(key.calls))}"
            )
        if key.streams and self._open.get(key.digest, 0) >= key.streams:
            raise errors.ResourceExhausted(
                f"this API key already holds its limit of {key.streams} open calls; end one, or ask for a higher limit"
            )
        self._open[key.digest] = self._open.get(key.digest, 0) + 1
        try:
            yield key
        finally:
            self._open[key.digest] -= 1


def bearer(metadata) -> str:
    """The `authorization` value of a gRPC call's metadata ("" when absent)."""
    return next((value for name, value in (metadata or ()) if name == "authorization"), "")
