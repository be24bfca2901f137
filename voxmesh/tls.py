"""TLS and mTLS credentials from PEM files named in the settings."""

from __future__ import annotations

from pathlib import Path

import grpc

from voxmesh import errors
from voxmesh.settings import ServiceSettings


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise errors.FailedPrecondition(f"cannot read the {what} {path!r}: {exc.strerror}") from exc


def server_credentials(settings: ServiceSettings) -> grpc.ServerCredentials | None:
    """TLS for the server when a certificate is configured; mTLS when a CA is configured too."""
    if not (settings.tls_cert_file or settings.tls_key_file):
        return None
    if not (settings.tls_cert_file and settings.tls_key_file):
        raise errors.FailedPrecondition("TLS needs both tls_cert_file and tls_key_file; only one is set")
    key = _read(settings.tls_key_file, "TLS key file")
    cert = _read(settings.tls_cert_file, "TLS certificate file")
    ca = _read(settings.tls_ca_file, "TLS CA file") if settings.tls_ca_file else None
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=ca is not None)


def channel_credentials(ca_file: str = "", cert_file: str = "", key_file: str = "") -> grpc.ChannelCredentials:
    """Credentials to dial a TLS server (verified against ca_file, or the system roots when empty),
    presenting a client certificate when cert_file and key_file are given."""
    return grpc.ssl_channel_credentials(
        root_certificates=_read(ca_file, "TLS CA file") if ca_file else None,
        private_key=_read(key_file, "TLS key file") if key_file else None,
        certificate_chain=_read(cert_file, "TLS certificate file") if cert_file else None,
    )
