"""`voiceclient demo`: a whole voice call with a tool, offline, against the embedded server in this process."""

from __future__ import annotations

import statistics
from importlib import resources
from pathlib import Path

from voiceclient.app.printer import TranscriptPrinter
from voiceclient.audio.sources import WavSource
from voiceclient.client.call import VoiceCall
from voiceclient.client.options import Recording
from voiceclient.client.settings import ClientSettings, TransportName
from voiceclient.protocol.session import SessionConfig
from voiceclient.server import RealtimeServer
from voiceclient.server.responders import ScenarioResponder
from voiceclient.speech.agent import AgentResponder
from voiceclient.speech.backends import SpeechBackends
from voiceclient.speech.vad_models import SileroProbability
from voiceclient.tools import tool

WEATHER = {"paris": ("sunny", 22), "london": ("cloudy", 14), "tokyo": ("rainy", 18)}


@tool
def get_weather(city: str) -> dict[str, object]:
    """Current weather for a city: forecast and temperature in degrees Celsius."""
    forecast, temperature = WEATHER.get(city.lower(), ("clear", 20))
    return {"city": city, "forecast": forecast, "temperature_c": temperature}


def describe(call: VoiceCall) -> str:
    """Which transport carries the call: "WebRTC" or "WebSocket" (what `auto` chose)."""
    transport = call.transport
    chosen = getattr(transport, "chosen", None) or transport  # an AutoTransport says what it chose
    return "WebSocket" if chosen.plays_audio else "WebRTC"


def asset(name: str) -> Path:
    return Path(str(resources.files("voiceclient") / "assets" / name))


# The demo's user says two sentences in one turn ("Thank you. Goodbye."): 500 ms keeps that a turn.
SILENCE_MS = 500


async def run_demo(
    output_dir: str | Path = "demo-output", quiet: bool = False, transport: TransportName = "auto"
) -> dict[str, object]:
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (once, before the call)
    files = {
        "conversation": out / "conversation.wav",
        "assistant": out / "assistant.wav",
        "events": out / "events.jsonl",
    }
    speech = SpeechBackends()
    await speech.ready()
    printer = TranscriptPrinter(quiet=quiet)
    agent = speech.stt is not None and speech.tts is not None
    session = SessionConfig.model_validate(
        {
            "type": "realtime",
            "instructions": "You are a weather assistant.",
            "audio": {
                "input": {
                    "turn_detection": {"type": "server_vad", "silence_duration_ms": SILENCE_MS},
                    **({"transcription": {"model": "whisper-1"}} if agent else {}),
                }
            },
        }
    )
    responder = (
        AgentResponder.from_file(asset("agent_demo.toml")) if agent else ScenarioResponder.from_file(asset("demo.toml"))
    )
    async with RealtimeServer(port=0, responder=responder, speech=speech) as server:
        printer.line(f"embedded Realtime server at {server.base_url} (no key, no network)")
        if agent:
            printer.line(f"offline agent: {speech.describe()} (models loaded in {speech.load_seconds:.1f} s)")
        else:
            printer.line("scripted replies; " + (speech.missing() or ""))
        settings = ClientSettings(base_url=server.base_url, api_key="sk-local-demo", transport=transport)
        async with VoiceCall(
            settings,
            session,
            source=WavSource(asset("demo_user.wav")),
            tools=[get_weather],
            recording=Recording(files["assistant"], files["conversation"], files["events"]),
            on_tool_result=printer.tool_result,
        ) as call:
            printer.attach(call)
            printer.line(f"connected in {call.connect_seconds:.2f} s over {describe(call)}, call {call.call_id}")
            await call.run_until_idle(idle_seconds=1.5, max_duration=60)
    summary: dict[str, object] = {
        "connect_seconds": call.connect_seconds,
        "user_turns": printer.user_turns,
        "responses": printer.responses,
        "agent": agent,
        "latencies": call.meter.latencies,
        "tool_calls": call.tool_calls,
        "speech_sent_seconds": call.meter.speech_sent_seconds,
        "speech_received_seconds": call.meter.speech_received_seconds,
        "transcript": printer.transcript,
        "files": {k: str(v) for k, v in files.items()},
    }
    if not quiet:
        lat = call.meter.latencies
        turn_end = SILENCE_MS + (SileroProbability.hangover_ms if speech.silero is not None else 0)
        print("\nSummary")
        print(f"  connect time        {call.connect_seconds:.2f} s (process-local, loopback)")
        print(f"  turns               {printer.user_turns} user, {printer.responses} assistant responses")
        if lat:
            print(
                f"  latency per turn    {', '.join(f'{x * 1000:.0f} ms' for x in lat)}"
                f"  (median {statistics.median(lat) * 1000:.0f} ms; end of user speech -> first assistant audio, "
                f"of which {turn_end} ms is waiting for the turn's end)"
            )
        print(f"  tool calls          {call.tool_calls} ({', '.join(printer.tools_called) or 'none'})")
        print(
            f"  speech sent / heard {call.meter.speech_sent_seconds:.1f} s / {call.meter.speech_received_seconds:.1f} s"
        )
        print(f"  files               {', '.join(str(p) for p in files.values())}")
    return summary
