"""Command line: `voiceclient call | serve | demo`. Thin: flags map onto config models, the work is elsewhere.

Exit codes: 0 done, 2 usage or configuration, 3 authentication, 4 connection, 5 server or call error,
130 interrupted (Ctrl-C). Failures print one line: `voiceclient: error: …`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Any
from collections.abc import Sequence

from .config import ClientSettings, build_session
from .errors import ConfigError, VoiceClientError

EXIT_INTERRUPTED = 130


def _session_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("session (sent as the session object; file first, then these flags)")
    g.add_argument("--session", metavar="FILE", help="session object as JSON or TOML")
    g.add_argument("--model", help="e.g. gpt-realtime")
    g.add_argument("--instructions", help="system instructions")
    g.add_argument("--voice", help="output voice, e.g. marin")
    g.add_argument("--set", dest="assignments", action="append", default=[], metavar="PATH=VALUE",
                   help="any session field, VALUE as JSON: --set audio.input.turn_detection=null")


def _connection_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("connection")
    g.add_argument("--base-url", help="API base URL (default: $OPENAI_BASE_URL or https://api.openai.com/v1)")
    g.add_argument("--api-key", help="API key (default: $OPENAI_API_KEY)")
    g.add_argument("--ice-server", dest="ice_servers", action="append", default=[], metavar="URL",
                   help="STUN/TURN server URL (default: none; host candidates only)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voiceclient", description="A WebRTC voice client for OpenAI's "
                                     "Realtime API, with an embedded Realtime-compatible server.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    sub = parser.add_subparsers(dest="command", required=True)

    call = sub.add_parser("call", help="a scripted call: a WAV as the microphone, files out")
    call.add_argument("--input", required=True, metavar="IN.wav", help="sent as the microphone, then silence")
    call.add_argument("--output", metavar="OUT.wav", help="assistant audio, mono 24 kHz")
    call.add_argument("--record", metavar="CONV.wav", help="stereo 24 kHz: left sent, right received")
    call.add_argument("--events", metavar="EVENTS.jsonl", help="every event, both directions, one per line")
    call.add_argument("--tools", action="append", default=[], metavar="FILE.py|package.module",
                      help="load @tool functions")
    call.add_argument("--idle-exit", type=float, default=2.0, metavar="SECONDS",
                      help="hang up after the input ends and the conversation is idle this long (default 2)")
    call.add_argument("--max-duration", type=float, metavar="SECONDS", help="hang up after this long in any case")
    call.add_argument("--quiet", action="store_true", help="no live transcript")
    _session_flags(call)
    _connection_flags(call)

    serve = sub.add_parser("serve", help="the embedded Realtime server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--scenario", metavar="FILE", help="scripted replies (JSON or TOML); default: echo")
    serve.add_argument("--api-key", help="accept only this key (default: any key)")

    demo = sub.add_parser("demo", help="a whole call with a tool against the embedded server, offline")
    demo.add_argument("--output-dir", default="demo-output")
    demo.add_argument("--quiet", action="store_true")
    return parser


def _check_positive(name: str, value: float | None) -> None:
    if value is not None and value <= 0:
        raise ConfigError(f"{name}: {value:g} is not allowed; must be greater than 0")


async def run_call(args: argparse.Namespace) -> int:
    from .audio.sources import WavSource
    from .printer import TranscriptPrinter
    from .session import VoiceCall
    from .tools.plugins import load_all

    _check_positive("--idle-exit", args.idle_exit)
    _check_positive("--max-duration", args.max_duration)
    settings = ClientSettings.from_env(base_url=args.base_url, api_key=args.api_key,
                                       ice_servers=args.ice_servers or None)
    session = build_session(args.session, assignments=args.assignments, model=args.model,
                            instructions=args.instructions, **{"audio.output.voice": args.voice})
    tools = load_all(args.tools)
    source = WavSource(args.input)
    printer = TranscriptPrinter(quiet=args.quiet)
    async with VoiceCall(settings, session, source=source, tools=tools, output_wav=args.output,
                         record_wav=args.record, events_jsonl=args.events,
                         on_tool_result=printer.tool_result) as call:
        printer.attach(call)
        printer.line(f"connected in {call.connect_seconds:.2f} s (call {call.call_id})")
        reason = await call.run_until_idle(args.idle_exit, args.max_duration)
        printer.line("hanging up: " + ("conversation idle" if reason == "idle" else "--max-duration reached"))
    return 0


async def run_serve(args: argparse.Namespace) -> int:
    from .server import RealtimeServer
    from .server.responders import ScenarioResponder

    responder = ScenarioResponder.from_file(args.scenario) if args.scenario else None
    server = RealtimeServer(args.host, args.port, responder=responder, api_key=args.api_key)
    try:
        await server.start()
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    print(f"voiceclient server listening on {server.base_url}  (Ctrl-C to stop)", flush=True)
    print(f"  try: voiceclient call --base-url {server.base_url} --api-key sk-local --input IN.wav", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await server.close()
    return 0


async def run_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo as demo

    await demo(args.output_dir, quiet=args.quiet)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "serve":  # a server says when calls come and go
        logging.getLogger("voiceclient.server").setLevel(min(level, logging.INFO))
    if args.verbose < 2:
        for noisy in ("aioice", "aiortc", "httpx"):
            logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    runner: Any = {"call": run_call, "serve": run_serve, "demo": run_demo}[args.command]
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        return asyncio.run(runner(args))
    except KeyboardInterrupt:
        if args.command == "serve":
            print("voiceclient: server stopped", file=sys.stderr)
        else:
            print("voiceclient: interrupted; hung up, files written so far are complete", file=sys.stderr)
        return EXIT_INTERRUPTED
    except VoiceClientError as exc:
        print(f"voiceclient: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
