"""The `voxmesh` command: up, serve, transcribe, health.

`transcribe --gateway` and `health` need only `pip install voxmesh`; `serve`, `up` and `transcribe` without
`--gateway` (which starts a local stack) need the services: `pip install 'voxmesh[server]'`.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from voxmesh import DEFAULT_PORTS, registry

SERVICES = {
    "vad": "voxmesh.services.vad.service:VadService",
    "asr": "voxmesh.services.asr.service:AsrService",
    "llm": "voxmesh.services.llm.service:LlmService",
    "gateway": "voxmesh.gateway.service:GatewayService",
    "web": "voxmesh.web.service:WebService",
}
DEFAULT_GATEWAY = f"localhost:{DEFAULT_PORTS['gateway']}"


def _tls_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tls-ca", metavar="PEM", default="", help="dial with TLS, verifying the server against this CA"
    )
    parser.add_argument("--tls-cert", metavar="PEM", default="", help="client certificate for mTLS")
    parser.add_argument("--tls-key", metavar="PEM", default="", help="private key of --tls-cert")


def _credentials(args: argparse.Namespace):
    if not (args.tls_ca or args.tls_cert):
        return None
    from voxmesh import tls

    return tls.channel_credentials(args.tls_ca, args.tls_cert, args.tls_key)


class ServerMissing(ImportError):
    """A command that runs the services, on an installation without the `server` extra."""


def server_modules():
    """The services' own modules: the settings registry and the runtime (the `server` extra)."""
    try:
        from pydantic import ValidationError

        from voxmesh import runtime
        from voxmesh import settings as settings_registry
    except ImportError as exc:
        raise ServerMissing(
            f"this command runs the voxmesh services, which this installation lacks ({exc.name} is missing): "
            "pip install 'voxmesh[server]'"
        ) from exc
    return settings_registry, runtime, ValidationError


def serve_main(name: str, argv: list[str] | None = None) -> int:
    """Run one service in this process (what containers run)."""
    try:
        settings_registry, runtime, ValidationError = server_modules()
    except ServerMissing as exc:
        print(f"voxmesh serve: {exc}", file=sys.stderr)
        return 2

    cls = settings_registry.SETTINGS[name]
    parser = argparse.ArgumentParser(prog=f"voxmesh serve {name}", description=f"Run the {name} service.")
    settings_registry.add_flags(parser, cls)
    args = parser.parse_args(argv)
    try:
        settings = settings_registry.from_flags(cls, args)
    except ValidationError as exc:
        prefix = cls.model_config.get("env_prefix", "")
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            print(
                f"voxmesh serve {name}: setting {field} (--{field.replace('_', '-')} or {prefix}{field.upper()}): "
                f"{error['msg']}",
                file=sys.stderr,
            )
        return 2
    service = registry.load(SERVICES, name)(settings)
    return runtime.run(service, settings)


async def _up(args: argparse.Namespace) -> int:
    server_modules()
    from voxmesh.stack import LocalStack, StackError, parse_replicas

    try:
        replicas = parse_replicas(args.replicas)
    except ValueError as exc:
        print(f"voxmesh up: --replicas: {exc}", file=sys.stderr)
        return 2
    stack = LocalStack(gateway_port=args.port, host=args.host, replicas=replicas)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print("starting " + ", ".join(f"{name} x{count}" for name, count in replicas.items()) + " ...", file=sys.stderr)
    try:
        async with stack:
            for member in stack.members:
                http = f" http://{stack.host}:{member.http_port}/" if member.http_port else ""
                print(
                    f"  {member.label:<10} grpc {stack.host}:{member.port:<6} "
                    f"metrics {stack.metrics_url(member.name, member.index)}{http}",
                    file=sys.stderr,
                )
            print(
                f"voxmesh is up: gateway at {stack.gateway}, the page and the OpenAI API at {stack.web}/. Ctrl-C "
                "stops it.",
                file=sys.stderr,
            )
            waiter = asyncio.create_task(stop.wait())
            watcher = asyncio.create_task(_supervise(stack))
            done, _ = await asyncio.wait({waiter, watcher}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            watcher.cancel()
            if watcher in done:
                print(f"voxmesh: {watcher.result()}; stopping the stack", file=sys.stderr)
                return 1
            print("stopping ...", file=sys.stderr)
    except StackError as exc:
        print(f"voxmesh up: {exc}", file=sys.stderr)
        return 1
    return 0


RESTARTS_PER_MINUTE = 3


async def _supervise(stack) -> str:
    """Start a replica again when it exits (as a container runtime would); give up on one that keeps exiting."""
    restarts: dict[str, list[float]] = {}
    while True:
        for member in stack.members:
            code = member.process.poll()
            if code is None:
                continue
            recent = [t for t in restarts.get(member.label, []) if time.monotonic() - t < 60]
            if len(recent) >= RESTARTS_PER_MINUTE:
                return f"the {member.label} service exited with code {code} {len(recent) + 1} times within a minute"
            restarts[member.label] = [*recent, time.monotonic()]
            print(f"voxmesh: {member.label} exited with code {code}; starting it again", file=sys.stderr)
            await stack.restart(member)
            print(f"voxmesh: {member.label} is serving again", file=sys.stderr)
        await asyncio.sleep(0.2)


def _phrase(value: str) -> tuple[str, float]:
    """PHRASE or PHRASE:BOOST."""
    phrase, colon, boost = value.rpartition(":")
    if not colon:
        return value, 0.0
    try:
        return phrase, float(boost)
    except ValueError:
        return value, 0.0  # a colon inside the phrase, no boost


async def _transcribe(args: argparse.Namespace) -> int:
    from voxmesh.client import Client, StreamOptions
    from voxmesh.console import Console
    from voxmesh.stack import LocalStack, StackError

    if args.gateway is None:
        server_modules()  # a local stack runs the services

    path = Path(args.path)
    if not path.is_file():  # noqa: ASYNC240 (one stat before any stream starts)
        print(f"voxmesh transcribe: no such file: {path}", file=sys.stderr)
        return 2
    captions = args.format in ("srt", "vtt")
    options = StreamOptions(
        language=args.language,
        partials=args.partials and not captions,
        post_processing=args.post_processing,
        instruction=args.instruction,
        resume=args.resume,
        word_timings=args.words or captions,  # captions are cut at word boundaries
        phrases=tuple(args.phrase),
        prompt=args.prompt,
        end_silence_ms=args.end_silence_ms,
    )
    console = Console(as_json=args.json, captions=args.format if captions else None)
    audio_s = 0.0

    def progress(sent: float, total: float) -> None:
        nonlocal audio_s
        audio_s = total
        console.progress(sent, total)

    # SIGTERM ends the run as Ctrl-C does: through the finally below, which stops the local stack.
    this = asyncio.current_task()
    assert this is not None  # a coroutine function: it runs in a task
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, this.cancel)
    stack = None
    try:
        if args.gateway is None:
            logs = Path(tempfile.mkdtemp(prefix="voxmesh-logs-"))
            if not args.json:
                print(f"starting a local stack (service logs in {logs}) ...", file=sys.stderr)
            stack = LocalStack(gateway_port=0, log_dir=logs)
            await stack.start()
        target = stack.gateway if stack else args.gateway
        started = time.monotonic()
        async with Client(target, credentials=_credentials(args), api_key=args.api_key) as client:
            raw = (args.encoding.upper(), args.rate) if args.encoding != "auto" else None
            async for event in client.stream_file(path, pace=args.pace, options=options, progress=progress, raw=raw):
                console.event(event)
    except StackError as exc:
        print(f"voxmesh transcribe: {exc}", file=sys.stderr)
        return 1
    except grpc.aio.AioRpcError as exc:
        print(
            f"\nvoxmesh transcribe: the gateway at {target} answered {exc.code().name}: {exc.details()}",
            file=sys.stderr,
        )
        return 1
    finally:
        if stack is not None:
            await asyncio.to_thread(stack.stop)
    console.finish(time.monotonic() - started, audio_s)
    return 0


async def check_health(target: str, credentials: grpc.ChannelCredentials | None = None, timeout: float = 5.0) -> str:
    """Any voxmesh service's overall health status name (SERVING, NOT_SERVING, ...), on a channel of its own:
    a Client's channel checks the gateway's Transcription health before it sends anything, which an inner
    service does not serve."""
    channel = grpc.aio.secure_channel(target, credentials) if credentials else grpc.aio.insecure_channel(target)
    try:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
    finally:
        await channel.close()
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


async def _health(args: argparse.Namespace) -> int:
    try:
        status = await check_health(args.gateway, _credentials(args), timeout=args.timeout)
    except grpc.aio.AioRpcError as exc:
        print(f"{args.gateway} {exc.code().name}: {exc.details()}")
        return 1
    print(f"{args.gateway} {status}")
    return 0 if status == "SERVING" else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="voxmesh", description="Real-time speech recognition mesh.")
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="run the local stack: four services as four processes on this machine")
    up.add_argument(
        "--port", type=int, default=DEFAULT_PORTS["gateway"], help="the gateway's port (default %(default)s)"
    )
    up.add_argument("--host", default="127.0.0.1", help="address every service binds to (default %(default)s)")
    up.add_argument(
        "--replicas",
        default="",
        metavar="SERVICE=N,...",
        help="replicas per service, e.g. asr=2,vad=2,llm=2,gateway=2 (default one each); a replica "
        "that exits is started again",
    )

    serve = commands.add_parser("serve", help="run one service (settings: --help of each)", add_help=True)
    serve.add_argument("service", choices=sorted(SERVICES))
    serve.add_argument("flags", nargs=argparse.REMAINDER, help="the service's flags; see voxmesh serve NAME --help")

    transcribe = commands.add_parser("transcribe", help="stream an audio file through the mesh and show the text")
    transcribe.add_argument("path", help="audio file: any format libsndfile reads (WAV, FLAC, OGG, ...), any rate")
    transcribe.add_argument(
        "--gateway", metavar="HOST:PORT", help="gateway to use (default: start a local stack for the run)"
    )
    transcribe.add_argument(
        "--pace",
        choices=("realtime", "fast"),
        default="realtime",
        help="send audio as fast as it plays (default) or as fast as the mesh takes it",
    )
    transcribe.add_argument("--json", action="store_true", help="print one JSON object per event per line")
    transcribe.add_argument(
        "--language",
        default="",
        help="language: a BCP-47 tag (en-US) or an ISO 639-1 code (en); default: the engine detects it",
    )
    transcribe.add_argument(
        "--partials",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="ask for partial transcripts (default on)",
    )
    transcribe.add_argument(
        "--post-processing",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="post-process finals with the LLM service (default on)",
    )
    transcribe.add_argument("--instruction", default="", help="instruction for the post-processor")
    transcribe.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="resume the stream on another gateway replica when its gateway goes away (default on)",
    )
    transcribe.add_argument(
        "--words", action="store_true", help="ask for word timings (shown in --json; costs engine time)"
    )
    transcribe.add_argument(
        "--phrase",
        action="append",
        default=[],
        type=_phrase,
        metavar="PHRASE[:BOOST]",
        help="a word or phrase the speaker is likely to say, optionally with a boost of 0 to 20 (repeatable)",
    )
    transcribe.add_argument("--prompt", default="", help="free text that sets the style and vocabulary")
    transcribe.add_argument(
        "--api-key", default=None, help="the key the gateway asks for, if it does (default: $VOXMESH_API_KEY)"
    )
    transcribe.add_argument(
        "--encoding",
        choices=("auto", "mulaw", "alaw"),
        default="auto",
        help="auto (default): any file libsndfile reads; mulaw or alaw: a headerless G.711 file (mono, --rate)",
    )
    transcribe.add_argument("--rate", type=int, default=8000, help="sample rate of a raw G.711 file (default 8000)")
    transcribe.add_argument(
        "--end-silence-ms",
        type=int,
        default=0,
        help="silence that ends an utterance, within the VAD's bounds (default: the VAD's own, 500 ms)",
    )
    transcribe.add_argument(
        "--format",
        choices=("text", "srt", "vtt"),
        default="text",
        help="text (default) shows the run; srt and vtt print captions of the finals, cut at word timings",
    )
    _tls_flags(transcribe)

    health = commands.add_parser("health", help="ask a voxmesh service whether it is SERVING (exit code 0 if so)")
    health.add_argument(
        "--gateway",
        metavar="HOST:PORT",
        default=DEFAULT_GATEWAY,
        help="address of the gateway, or of any voxmesh service (default %(default)s)",
    )
    health.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the answer")
    _tls_flags(health)

    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve_main(args.service, args.flags)
    runner = {"up": _up, "transcribe": _transcribe, "health": _health}[args.command]
    try:
        return asyncio.run(runner(args))
    except ServerMissing as exc:
        print(f"voxmesh {args.command}: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, asyncio.CancelledError):
        return 130
