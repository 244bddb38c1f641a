"""Command line: `voiceclient call | talk | transcribe | serve | demo | ...`. Thin: flags map onto config models,
the work is elsewhere.

Exit codes: 0 done, 2 usage or configuration, 3 authentication, 4 connection, 5 server or call error,
130 interrupted by Ctrl-C (SIGINT), 143 by SIGTERM; `serve` and `transcribe --mic` stopped either way exit 0.
Failures print one line: `voiceclient: error: …`.

Start-up: this module imports only what parsing the command line needs (`--help` and `--version` load neither
pydantic nor asyncio); each command imports its own modules when it runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import voiceclient
from voiceclient.client.options import Continuity, Recording
from voiceclient.errors import AuthenticationError, ConfigError, VoiceClientError

if TYPE_CHECKING:
    from agents.realtime import RealtimeAgent

    from voiceclient.client.settings import ClientSettings
    from voiceclient.protocol.session import SessionConfig, TranscriptionSessionConfig
    from voiceclient.tools.approvals import Approver
    from voiceclient.tools.registry import Tool

NO_KEY = "no API key: pass --api-key (any value works for voiceclient serve) or set OPENAI_API_KEY"
TRANSCRIBE_MODEL = "gpt-4o-mini-transcribe"  # `transcribe`'s model when neither --model nor the session names one


def _session_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("session (sent as the session object: --config, --session, then these flags)")
    g.add_argument("--config", metavar="FILE", help="config file (TOML or JSON) with [session] and [tools]")
    g.add_argument("--session", metavar="FILE", help="session object as JSON or TOML")
    g.add_argument("--model", help="e.g. gpt-realtime")
    g.add_argument("--instructions", help="system instructions")
    g.add_argument("--voice", help="output voice, e.g. marin")
    g.add_argument(
        "--set",
        dest="assignments",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="any session field, VALUE as JSON: --set audio.input.turn_detection=null",
    )


def _tool_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tools",
        action="append",
        default=[],
        metavar="FILE.py|package.module",
        help="load @tool functions (enabled); installed plugins are enabled in the config's [tools]",
    )


def _agent_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--agent",
        metavar="MODULE:ATTR|FILE.py:ATTR",
        help="an OpenAI Agents SDK RealtimeAgent answers (the agents extra): the SDK runs its tools, "
        "handoffs and guardrails over this WebRTC call; the session flags apply over the agent's",
    )


def _connection_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("connection")
    g.add_argument("--base-url", help="API base URL (default: $OPENAI_BASE_URL or https://api.openai.com/v1)")
    g.add_argument("--api-key", help="API key (default: $OPENAI_API_KEY)")
    g.add_argument(
        "--ice-server",
        dest="ice_servers",
        action="append",
        default=[],
        metavar="URL",
        help="STUN/TURN server URL (default: none; host candidates only)",
    )
    g.add_argument(
        "--transport",
        choices=["auto", "webrtc", "websocket"],
        help="auto (default): WebRTC, and the WebSocket when ICE has not connected within 3 s (a "
        "network that drops UDP); webrtc: WebRTC only; websocket: one WebSocket session, the audio "
        "as events (through any network that lets HTTPS out)",
    )
    g.add_argument(
        "--api",
        choices=["auto", "realtime", "live"],
        help="the voice API: auto (default): GPT-Live (/live/sessions) for a gpt-live-* model, else the Realtime "
        "API; live or realtime whatever the model is named (a deployment of your own)",
    )
    g.add_argument(
        "--delegation",
        choices=["responses", "client"],
        help="GPT-Live: who runs the tools' calls: responses (default): a Responses backend hands each function "
        "call to your tools; client: the model delegates tasks to this client, and the first tool answers each, "
        "with what the user said",
    )
    g.add_argument(
        "--connect-timeout",
        type=float,
        metavar="SECONDS",
        help="give the call up when ICE has not connected this long after the answer (default 5)",
    )
    g.add_argument(
        "--max-retries",
        type=int,
        metavar="N",
        help="retries of a refused or failed HTTP request, as the openai SDK does (default 2; 429, "
        "408, 409, 5xx and connection errors; Retry-After honoured up to 60 s)",
    )


def _continuity_flags(p: argparse.ArgumentParser, reconnect: int) -> None:
    g = p.add_argument_group("calls that last (the conversation outlives its connection)")
    g.add_argument(
        "--reconnect",
        type=int,
        default=reconnect,
        metavar="N",
        help=f"after a lost connection, up to N new connections with the conversation replayed, backing "
        f"off 0.5, 1, 2, 4 s (default {reconnect})",
    )
    g.add_argument(
        "--recycle-after",
        type=float,
        metavar="SECONDS",
        help="move to a fresh connection after this long (at a quiet moment, history replayed); without "
        "it, 60 s before the session's expires_at",
    )
    g.add_argument(
        "--media-timeout",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="a server that was sending audio and stops for this long is lost (default 2)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voiceclient",
        description="A WebRTC voice client for OpenAI's Realtime API, with an embedded Realtime-compatible server.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    parser.add_argument("--version", action="version", version=f"voiceclient {voiceclient.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    call = sub.add_parser("call", help="a scripted call: a WAV as the microphone, files out")
    call.add_argument("--input", required=True, metavar="IN.wav", help="sent as the microphone, then silence")
    call.add_argument("--output", metavar="OUT.wav", help="assistant audio, mono 24 kHz")
    call.add_argument("--record", metavar="CONV.wav", help="stereo 24 kHz: left sent, right received")
    call.add_argument("--events", metavar="EVENTS.jsonl", help="every event, both directions, one per line")
    _tool_flags(call)
    _agent_flag(call)
    call.add_argument(
        "--approve",
        choices=["always", "never"],
        help="answer to tools that need approval and MCP approval requests (default: the config's "
        "[tools] approve, else never)",
    )
    call.add_argument("--tool-timeout", type=float, metavar="SECONDS", help="default tool timeout (30)")
    call.add_argument(
        "--idle-exit",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="hang up after the input ends and the conversation is idle this long (default 2)",
    )
    call.add_argument("--max-duration", type=float, metavar="SECONDS", help="hang up after this long in any case")
    call.add_argument("--quiet", action="store_true", help="no live transcript")
    _session_flags(call)
    _connection_flags(call)
    _continuity_flags(call, reconnect=0)

    talk = sub.add_parser("talk", help="talk to the model: microphone, speaker, barge-in, echo cancellation")
    talk.add_argument("--input-device", metavar="INDEX|NAME", help="microphone (default: the system's)")
    talk.add_argument("--output-device", metavar="INDEX|NAME", help="speaker (default: the system's)")
    talk.add_argument(
        "--aec",
        choices=["auto", "on", "off"],
        default="auto",
        help="echo cancellation (auto: on unless the output looks like a headset)",
    )
    talk.add_argument(
        "--noise-reduction",
        choices=["near_field", "far_field", "off"],
        help="the server's input noise reduction (session audio.input.noise_reduction)",
    )
    talk.add_argument(
        "--push-to-talk", action="store_true", help="no turn detection: /t starts a turn, /t again sends it"
    )
    talk.add_argument("--record", metavar="CONV.wav", help="stereo 24 kHz: left sent, right received")
    talk.add_argument("--events", metavar="EVENTS.jsonl", help="every event, both directions, one per line")
    talk.add_argument("--max-duration", type=float, metavar="SECONDS", help="hang up after this long")
    _tool_flags(talk)
    _agent_flag(talk)
    talk.add_argument(
        "--approve",
        choices=["always", "never"],
        help="a policy for tools that need approval (default: the config's; else, in a terminal, "
        "you are asked each time: y / n / a; without one, never)",
    )
    _session_flags(talk)
    _connection_flags(talk)
    _continuity_flags(talk, reconnect=5)

    transcribe = sub.add_parser(
        "transcribe", help="a transcription session: a WAV or the microphone in, each turn's transcript out"
    )
    transcribe.add_argument(
        "input",
        nargs="?",
        metavar="IN.wav",
        help="sent as the microphone, then silence; ends once every turn of it is transcribed",
    )
    transcribe.add_argument("--mic", action="store_true", help="the microphone instead of a WAV, until Ctrl-C")
    transcribe.add_argument("--input-device", metavar="INDEX|NAME", help="with --mic: which (default: the system's)")
    transcribe.add_argument("--events", metavar="EVENTS.jsonl", help="every event, both directions, one per line")
    transcribe.add_argument(
        "--idle-exit",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="end after the WAV ends and nothing has happened this long (default 2)",
    )
    transcribe.add_argument("--max-duration", type=float, metavar="SECONDS", help="end after this long in any case")
    g = transcribe.add_argument_group("session (a transcription session: --session, then these flags)")
    g.add_argument("--session", metavar="FILE", help="transcription session object as JSON or TOML")
    g.add_argument("--model", help=f"transcription model (default: the session's, else {TRANSCRIBE_MODEL})")
    g.add_argument("--language", metavar="CODE", help="the input's language, e.g. en")
    g.add_argument("--prompt", help="words or context that guide the transcription")
    g.add_argument(
        "--set",
        dest="assignments",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="any session field, VALUE as JSON: --set audio.input.turn_detection=null (commit at the end)",
    )
    _connection_flags(transcribe)
    _continuity_flags(transcribe, reconnect=0)

    sub.add_parser("devices", help="list microphones and speakers")

    serve = sub.add_parser("serve", help="the embedded Realtime server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--scenario", metavar="FILE", help="scripted turns, or agent rules (JSON or TOML); default: echo"
    )
    serve.add_argument(
        "--agent",
        action="store_true",
        help="answer with the offline agent (listens, speaks, acknowledges what it heard)",
    )
    serve.add_argument(
        "--vad",
        choices=["auto", "energy"],
        default="auto",
        help="auto: Silero VAD when installed (speech), else energy; energy: level only (tones)",
    )
    serve.add_argument("--no-speech", action="store_true", help="do not load the offline speech models")
    serve.add_argument("--api-key", help="accept only this key (default: any key)")
    serve.add_argument(
        "--fault",
        dest="faults",
        action="append",
        default=[],
        metavar="ACTION[:key=value...]",
        help="inject a fault: stop_media, close_channel, drop_connection, expire_session, "
        "delay_events (with at_seconds= or after_turns=, call=N, delay_ms=), http_status "
        "(status=, retry_after=, times=, call=N) or unreachable (call=N: ICE checks go "
        "unanswered, as where UDP is dropped); also [[faults]] in a scenario file",
    )
    serve.add_argument(
        "--network",
        metavar="PROFILE_OR_SPEC",
        help="a bad network between the server and every client, on the real packets: wifi, bad-wifi, lossy, "
        "mobile, or a spec such as down=bad-wifi, wifi:seed=3, delay_ms=40:jitter_ms=20:loss=0.01, "
        "down.loss=0.05:up.delay_ms=30 (docs/bad-networks.md)",
    )
    serve.add_argument(
        "--answer",
        dest="answer_shape",
        choices=["real", "aiortc"],
        default="real",
        help="real: ICE-lite and the SDP answer as OpenAI's service gives it (default); aiortc: "
        "aiortc's own answer (full ICE, every interface)",
    )
    serve.add_argument(
        "--max-call-seconds",
        type=float,
        default=3600.0,
        metavar="S",
        help="end each call after S seconds with the `session_expired` error the real service "
        "sends at its 60-minute cap (default 3600); `session.created` says when, in expires_at",
    )
    serve.add_argument(
        "--record-dir",
        metavar="DIR",
        help="keep each WebRTC call's stereo recording in DIR (the console links it, and its timeline "
        "page shows the waveforms and the latency as heard)",
    )
    serve.add_argument(
        "--pace-websocket-audio",
        action="store_true",
        help="send WebSocket sessions their answer audio in real time (default: as fast as it is "
        "made, as the real service does)",
    )
    serve.add_argument(
        "--workers",
        default="1",
        metavar="N",
        help="spread the calls over N worker processes behind this one's port (auto: one per core; "
        "default 1: one process does it all)",
    )
    serve.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # a worker of a --workers front
    serve.add_argument("--media-host", help=argparse.SUPPRESS)  # a worker's WebRTC candidates: its front's host

    tools = sub.add_parser("tools", help="list discovered tool plugins, what is enabled, and the schema sent")
    tools.add_argument("--config", metavar="FILE", help="config file with a [tools] section")
    _tool_flags(tools)
    tools.add_argument("--json", action="store_true", help="machine-readable output")

    report = sub.add_parser("report", help="a call's timeline as one HTML page, from its event log and recording")
    report.add_argument("events", metavar="EVENTS.jsonl", help="the call's event log (--events)")
    report.add_argument(
        "--recording",
        metavar="CONV.wav",
        help="its stereo recording (--record): the waveforms, and each turn's latency as heard",
    )
    report.add_argument("-o", "--output", metavar="REPORT.html", help="default: EVENTS.html beside the log")
    report.add_argument("--png", metavar="REPORT.png", help="also a picture of the timeline (needs Chromium)")

    demo = sub.add_parser("demo", help="a whole call with a tool against the embedded server, offline")
    demo.add_argument("--output-dir", default="demo-output")
    demo.add_argument("--quiet", action="store_true")
    demo.add_argument(
        "--transport",
        choices=["auto", "webrtc", "websocket"],
        default="auto",
        help="how the call reaches the server (default auto: WebRTC, else the WebSocket)",
    )
    return parser


def _check_positive(name: str, value: float | None) -> None:
    if value is not None and value <= 0:
        raise ConfigError(f"{name}: {value:g} is not allowed; must be greater than 0")


def _check_port(name: str, value: int) -> None:
    if not 0 <= value <= 65535:
        raise ConfigError(f"{name}: {value} is not allowed; must be 0 to 65535 (0: any free port)")


def _load_config(path: str | None) -> dict[str, Any]:
    from voiceclient.client.settings import load_config_file

    return load_config_file(path) if path else {}


@dataclass
class CallSetup:
    """What `call` and `talk` both build from their flags and `--config`."""

    settings: ClientSettings
    session: SessionConfig
    tools: list[Tool]
    approver: Approver
    tool_timeout: float
    continuity: Continuity
    approve_given: bool  # --approve, or `approve` in the config's [tools]: a policy, not a question
    agent: RealtimeAgent[Any] | None  # --agent, loaded


def client_settings(args: argparse.Namespace) -> ClientSettings:
    """The connection flags (`_connection_flags`) over the environment's."""
    from voiceclient.client.settings import ClientSettings

    return ClientSettings.from_env(
        base_url=args.base_url,
        api_key=args.api_key,
        ice_servers=args.ice_servers or None,
        max_retries=args.max_retries,
        connect_timeout=args.connect_timeout,
        transport=args.transport,
        api=getattr(args, "api", None),
        delegation=getattr(args, "delegation", None),
    )


def continuity_of(args: argparse.Namespace) -> Continuity:
    """The continuity flags (`_continuity_flags`), checked."""
    if args.reconnect < 0:
        raise ConfigError(f"--reconnect: {args.reconnect} is not allowed; must be 0 or more")
    _check_positive("--recycle-after", args.recycle_after)
    _check_positive("--media-timeout", args.media_timeout)
    return Continuity(reconnect=args.reconnect, recycle_after=args.recycle_after, media_timeout=args.media_timeout)


def call_setup(args: argparse.Namespace, assignments: list[str] | None = None) -> CallSetup:
    from voiceclient.client.settings import build_session
    from voiceclient.tools.approvals import policy
    from voiceclient.tools.plugins import select, tools_config

    config = _load_config(args.config)
    settings = client_settings(args)
    session = build_session(
        args.session,
        base=config.get("session"),
        assignments=args.assignments if assignments is None else assignments,
        model=args.model,
        instructions=args.instructions,
        **{"audio.output.voice": args.voice},
    )
    tools_cfg = tools_config(config.get("tools"))
    # Installed plugins are looked up (every package's entry points, 15 ms) only when the config enables some.
    tools, _ = select(tools_cfg, args.tools, installed=None if tools_cfg.plugins else [])
    continuity = continuity_of(args)
    if getattr(args, "agent", None):
        if args.tools or tools:
            raise ConfigError(
                "--agent: the agent's tools run in the Agents SDK; --tools and enabled plugins are for "
                "voiceclient's own tool runner, not both"
            )
        if settings.transport == "websocket":
            raise ConfigError(
                "--agent runs over WebRTC (voiceclient.agents.WebRTCModel); for a WebSocket, run the SDK's own model"
            )
    agent = None
    if getattr(args, "agent", None):
        from voiceclient.agents.app import load_agent

        agent = load_agent(args.agent)
    # After every flag is checked (a mistake in the command line is said first), before anything is sent.
    if not settings.has_credential:
        raise AuthenticationError(NO_KEY)
    given = args.approve is not None or "approve" in (config.get("tools") or {})
    return CallSetup(
        settings,
        session,
        tools,
        policy(args.approve or tools_cfg.approve),
        tools_cfg.timeout,
        continuity,
        given,
        agent,
    )


async def run_call(args: argparse.Namespace) -> int:
    from voiceclient.app.printer import TranscriptPrinter
    from voiceclient.audio.sources import WavSource
    from voiceclient.client.call import VoiceCall

    _check_positive("--idle-exit", args.idle_exit)
    _check_positive("--max-duration", args.max_duration)
    _check_positive("--tool-timeout", args.tool_timeout)
    setup = call_setup(args)
    source = WavSource(args.input)
    printer = TranscriptPrinter(quiet=args.quiet)
    if setup.agent is not None:
        from voiceclient.agents.app import call_with_agent
        from voiceclient.agents.model import WebRTCModel

        model = WebRTCModel(
            source=source,
            playback=False,
            recording=Recording(args.output, args.record, args.events),
            continuity=setup.continuity,
            settings=setup.settings,
            session=setup.session,
            on_status=printer.line,
        )
        await call_with_agent(setup.agent, model, printer, args.idle_exit, args.max_duration)
        return 0
    async with VoiceCall(
        setup.settings,
        setup.session,
        source=source,
        tools=setup.tools,
        recording=Recording(args.output, args.record, args.events),
        continuity=setup.continuity,
        on_tool_result=printer.tool_result,
        tool_timeout=args.tool_timeout or setup.tool_timeout,
        approver=setup.approver,
        on_status=printer.line,
    ) as call:
        printer.attach(call)
        printer.line(f"connected in {call.connect_seconds:.2f} s (call {call.call_id})")
        reason = await call.run_until_idle(args.idle_exit, args.max_duration)
        printer.line("hanging up: " + ("conversation idle" if reason == "idle" else "--max-duration reached"))
    return 0


async def run_talk(args: argparse.Namespace) -> int:
    from voiceclient.app.talk import Talk

    _check_positive("--max-duration", args.max_duration)
    assignments = list(args.assignments)
    if args.noise_reduction:
        value = "null" if args.noise_reduction == "off" else json.dumps({"type": args.noise_reduction})
        assignments.append(f"audio.input.noise_reduction={value}")
    setup = call_setup(args, assignments)
    talk = Talk(
        setup.settings,
        setup.session,
        tools=setup.tools,
        approver=setup.approver,
        agent=setup.agent,
        input_device=args.input_device,
        output_device=args.output_device,
        aec=args.aec,
        push_to_talk=args.push_to_talk,
        recording=Recording(record_wav=args.record, events_jsonl=args.events),
        continuity=setup.continuity,
        ask_approvals=not setup.approve_given and sys.stdin.isatty() and sys.stdout.isatty(),
    )
    await talk.run(args.max_duration)
    return 0


def transcription_session(args: argparse.Namespace) -> TranscriptionSessionConfig:
    """`transcribe`'s session: `TRANSCRIBE_MODEL` unless the session file names another, then the file, then the
    flags."""
    from voiceclient.client.settings import build_transcription_session

    default = {"audio": {"input": {"transcription": {"model": TRANSCRIBE_MODEL}}}}
    return build_transcription_session(
        args.session,
        base=default,
        assignments=args.assignments,
        **{
            "audio.input.transcription.model": args.model,
            "audio.input.transcription.language": args.language,
            "audio.input.transcription.prompt": args.prompt,
        },
    )


async def run_transcribe(args: argparse.Namespace) -> int:
    from voiceclient.app.transcribe import TranscriptLines, transcribe
    from voiceclient.audio.sources import AudioSource, WavSource

    if (args.input is None) != args.mic:
        raise ConfigError("transcribe: give IN.wav or --mic (one of them)")
    if args.input_device is not None and not args.mic:
        raise ConfigError("--input-device: only with --mic")
    _check_positive("--idle-exit", args.idle_exit)
    _check_positive("--max-duration", args.max_duration)
    settings = client_settings(args)
    session = transcription_session(args)
    continuity = continuity_of(args)
    if not settings.has_credential:
        raise AuthenticationError(NO_KEY)
    lines = TranscriptLines()
    source: AudioSource
    if args.mic:
        from voiceclient.audio.mic import MicSource

        mic = source = MicSource(args.input_device)
        mic.start()
    else:
        source = WavSource(args.input)
    try:
        reason = await transcribe(
            settings,
            session,
            source,
            lines,
            recording=Recording(events_jsonl=args.events),
            continuity=continuity,
            idle_exit=args.idle_exit,
            max_duration=args.max_duration,
            until_stopped=args.mic,
        )
    finally:
        if args.mic:
            mic.close()
    ended = "--max-duration reached" if reason == "max_duration" else "the input ended"
    lines.status(
        f"{ended}; {len(lines.lines)} turn(s) transcribed" + (f", {lines.failures} failed" if lines.failures else "")
    )
    return 0


async def run_devices(args: argparse.Namespace) -> int:
    from voiceclient.audio.devices import format_devices, list_devices

    print(format_devices(list_devices()))
    return 0


async def run_serve(args: argparse.Namespace) -> int:
    import asyncio
    import shlex

    from voiceclient.server import RealtimeServer
    from voiceclient.server.faults import FaultPlan, parse_fault
    from voiceclient.server.network import parse_network
    from voiceclient.speech.agent import responder_for, scenario_faults
    from voiceclient.speech.backends import SpeechBackends

    _check_port("--port", args.port)
    workers = _workers(args.workers)
    network = parse_network(args.network) if args.network is not None else None
    responder = responder_for(args.scenario or None, args.agent)
    speech = None if args.no_speech else SpeechBackends()
    _check_positive("--max-call-seconds", args.max_call_seconds)
    faults = FaultPlan(scenario_faults(responder) + [parse_fault(text) for text in args.faults])
    if workers > 1:
        return await _run_front(args, workers)
    server = RealtimeServer(
        args.host,
        args.port,
        responder=responder,
        api_key=args.api_key,
        speech=speech,
        vad=args.vad,
        max_call_seconds=args.max_call_seconds,
        faults=faults,
        pace_websocket_audio=args.pace_websocket_audio,
        answer_shape=args.answer_shape,
        record_dir=args.record_dir,
        network=network,
        media_host=args.media_host,
    )
    try:
        await server.start()
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    print(f"voiceclient server listening on {server.base_url}  (Ctrl-C to stop)", flush=True)
    if not args.worker:  # (a worker's front gives its own address)
        key = shlex.quote(args.api_key or "sk-local")  # any key will do, unless --api-key names the one
        print(f"  try: voiceclient call --base-url {server.base_url} --api-key {key} --input IN.wav", flush=True)
        print(f"  the live console: {server.base_url.removesuffix('/v1')}/ in a browser", flush=True)
        print(f"  WebSocket sessions: {server.websocket_url}/realtime?model=gpt-realtime", flush=True)
    if network is not None:
        print(f"  network: {network.explain()}", flush=True)
    if speech is not None:
        await speech.ready()
        print(f"  offline speech: {speech.describe()} (loaded in {speech.load_seconds:.1f} s)", flush=True)
        if speech.silero is not None and args.vad == "auto":
            print(
                "  turns: Silero VAD hears speech only; pass --vad energy for tones or other synthetic audio",
                flush=True,
            )
        hint = speech.missing()
        if hint:
            print(f"  {hint}", flush=True)
    try:
        await (_until_front_goes() if args.worker else asyncio.Event().wait())
    finally:
        await server.close()
    return 0


def _workers(text: str) -> int:
    import os

    from voiceclient.server.workers import worker_count

    return worker_count(text, os.cpu_count())


def _worker_command(args: argparse.Namespace) -> list[str]:
    """The `voiceclient serve` of one worker: this one's options, on 127.0.0.1 port 0, media on this host."""
    command = [sys.executable, "-m", "voiceclient", *["-v"] * args.verbose, "serve", "--worker", "--port", "0"]
    command += ["--host", "127.0.0.1", "--media-host", args.host]
    for flag, value in (
        ("--scenario", args.scenario),
        ("--vad", args.vad),
        ("--api-key", args.api_key),
        ("--network", args.network),
        ("--answer", args.answer_shape),
        ("--max-call-seconds", repr(args.max_call_seconds)),
        ("--record-dir", args.record_dir),
    ):
        if value is not None:
            command += [flag, str(value)]
    command += [f"--fault={text}" for text in args.faults]
    for flag, on in (("--agent", args.agent), ("--no-speech", args.no_speech)):
        if on:
            command.append(flag)
    if args.pace_websocket_audio:
        command.append("--pace-websocket-audio")
    return command


async def _run_front(args: argparse.Namespace, workers: int) -> int:
    """`serve --workers N`: this process routes, N `serve --worker` processes hold the calls."""
    import asyncio
    import shlex

    from voiceclient.server.workers import Front

    def said(number: int, line: str) -> None:  # the workers' models loaded: the first one says so for all
        if number == 1 and line.strip():
            print(line, flush=True)

    front = Front(_worker_command(args), workers, args.host, args.port, on_output=said)
    try:
        await front.start()
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    try:
        print(f"voiceclient server listening on {front.base_url}  (Ctrl-C to stop)", flush=True)
        pids = ", ".join(str(pid) for pid in front.pids)
        print(f"  {workers} workers (pids {pids}): each call on the least busy one", flush=True)
        key = shlex.quote(args.api_key or "sk-local")
        print(f"  try: voiceclient call --base-url {front.base_url} --api-key {key} --input IN.wav", flush=True)
        print(f"  the live console: {front.base_url.removesuffix('/v1')}/ in a browser", flush=True)
        print(f"  WebSocket sessions: {front.websocket_url}/realtime?model=gpt-realtime", flush=True)
        await asyncio.Event().wait()
    finally:
        await front.close()
    return 0


async def _until_front_goes() -> None:
    """A worker's life: until its front's end of its stdin closes (the front was killed, or stopped without
    stopping it). Then the worker stops as on SIGTERM: its calls are told."""
    import asyncio

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.read(4096):
        pass


async def run_tools(args: argparse.Namespace) -> int:
    from voiceclient.tools.plugins import ENTRY_POINT_GROUP, select, tools_config

    config = _load_config(args.config)
    chosen, sources = select(tools_config(config.get("tools")), args.tools)
    schema = [t.definition.to_wire() for t in chosen]
    if args.json:
        print(
            json.dumps(
                {
                    "sources": [
                        {
                            "name": s.name,
                            "origin": s.origin,
                            "installed": s.installed,
                            "enabled": s.enabled,
                            "error": s.error,
                            "tools": [t.name for t in s.tools],
                        }
                        for s in sources
                    ],
                    "enabled": [t.name for t in chosen],
                    "schema": schema,
                },
                indent=2,
            )
        )
        return 0
    enabled = {id(t) for t in chosen}
    installed = [s for s in sources if s.installed]
    print(f"installed plugins (entry-point group {ENTRY_POINT_GROUP}): {len(installed) or 'none'}")
    for s in sources:
        if not s.installed and s is sources[0]:
            print("from --tools:")
        state = "enabled" if s.enabled else "not enabled (add it to [tools] plugins)"
        print(f"  {s.name}  {state}  {s.origin if s.installed else ''}".rstrip())
        if s.error:
            print(f"      error: {s.error}")
        for t in s.tools:
            flags = [
                f
                for f, on in (
                    ("needs approval", t.needs_approval),
                    ("cancel on interrupt", t.cancel_on_interrupt),
                    (f"timeout {t.timeout or 0:g} s", t.timeout),
                )
                if on
            ]
            mark = "on " if id(t) in enabled else "off"
            print(
                f"      [{mark}] {t.name}: {t.description.splitlines()[0] if t.description else ''}"
                + (f"  ({', '.join(flags)})" if flags else "")
            )
    print(f"\nsent to the model as session.tools ({len(schema)}):")
    print(json.dumps(schema, indent=2))
    return 0


async def run_report(args: argparse.Namespace) -> int:
    import asyncio
    import time
    from pathlib import Path

    from voiceclient.report import screenshot, write_report

    out = Path(args.output) if args.output else Path(args.events).with_suffix(".html")
    started = time.monotonic()
    timeline = await asyncio.to_thread(write_report, args.events, args.recording, out)
    s = timeline.summary
    print(
        f"{out}: {s['duration']:.1f} s, {s['turns']} turns, latency "
        + (f"{s['latency_median_ms']} ms median" if s["latency_median_ms"] is not None else "-")
        + f", {len(s['tools'])} tool calls, {s['errors']} errors ({out.stat().st_size / 1024:.0f} KB in "
        f"{time.monotonic() - started:.2f} s)"
    )
    if args.png:
        await asyncio.to_thread(screenshot, out, args.png)
        print(args.png)
    return 0


async def run_demo(args: argparse.Namespace) -> int:
    from voiceclient.app.demo import run_demo as demo

    await demo(args.output_dir, quiet=args.quiet, transport=args.transport)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # `--help`, `--version` and a usage error end here, before the imports below
    import logging
    import os
    import signal

    from voiceclient.app.pipes import ReaderGoneSafe
    from voiceclient.app.stopping import Stopped, run_command

    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    worker = f"[worker {os.getpid()}] " if args.command == "serve" and args.worker else ""
    logging.basicConfig(level=level, format=f"%(levelname)s {worker}%(name)s: %(message)s")
    if args.command == "serve":  # a server says when calls come and go, and what the network did to their audio
        for name in ("voiceclient.server", "voiceclient.rtc"):
            logging.getLogger(name).setLevel(min(level, logging.INFO))
    if args.verbose < 2:
        for noisy in ("aioice", "aiortc", "httpx"):
            logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    commands: dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, int]]] = {
        "call": run_call,
        "talk": run_talk,
        "transcribe": run_transcribe,
        "devices": run_devices,
        "serve": run_serve,
        "tools": run_tools,
        "demo": run_demo,
        "report": run_report,
    }
    runner = commands[args.command]
    if not isinstance(sys.stdout, ReaderGoneSafe):
        sys.stdout = ReaderGoneSafe(sys.stdout)
    try:
        return run_command(runner(args))
    except (Stopped, KeyboardInterrupt) as exc:
        signum = exc.signum if isinstance(exc, Stopped) else signal.SIGINT
        if args.command == "serve":  # stopping is how a server ends: every call was closed and told
            if not args.worker:  # (its front says it, once)
                print("voiceclient: server stopped", file=sys.stderr)
            return 0
        if args.command == "transcribe" and args.mic:  # and how a microphone's transcription does
            print("voiceclient: stopped; hung up", file=sys.stderr)
            return 0
        print("voiceclient: interrupted; hung up, files written so far are complete", file=sys.stderr)
        return 128 + signum
    except VoiceClientError as exc:
        print(f"voiceclient: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
