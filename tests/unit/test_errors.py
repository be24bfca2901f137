"""Messages for callers: client input quoted short, no inner addresses."""

from __future__ import annotations

import grpc

from voxmesh import errors


def test_client_input_is_quoted_at_most_64_characters():
    assert errors.quote("fr") == "'fr'"
    long = errors.quote("x" * 100_000)
    assert len(long) <= errors.QUOTE_CHARS + 2 and long.endswith("\u2026'")


def test_addresses_are_taken_out_of_what_downstream_services_and_grpc_say():
    said = (
        "failed to connect to all addresses; last error: UNKNOWN: ipv4:10.1.2.3:50053: Connection refused; "
        "also dns:///asr-headless:50053, [::1]:50051, localhost:50053 and 192.168.0.7"
    )
    clean = errors.without_addresses(said)
    for address in ("10.1.2.3", "asr-headless", "::1", "localhost:50053", "192.168.0.7"):
        assert address not in clean
    assert "Connection refused" in clean
    error = errors.DownstreamError("asr", grpc.StatusCode.UNAVAILABLE, said)
    assert "10.1.2.3" not in str(error) and str(error).startswith("asr service:")
