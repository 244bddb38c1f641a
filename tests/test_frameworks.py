"""The frameworks most people reach the Realtime API through, driven unchanged against the embedded server's
WebSocket: pipecat (`OpenAIRealtimeLLMService` in a pipeline) and LiveKit Agents (`RealtimeModel`'s session,
driven without a room). Each: connect, a typed turn, a spoken turn whose tool the framework runs, and the edge the
framework branches on (pipecat: a retrieve of an unknown item must fail that call, not the session; LiveKit: an item
put first with previous_item_id "root" must be reported after null, not after "root").

And their GPT-Live models against the server's `/v1/live/sessions` WebSocket: pipecat's `OpenAILiveLLMService` and
LiveKit's `GPTLiveModel`, with Responses delegation (the framework runs the tool) and, for LiveKit, delegation to
the application (answered with commentary); every raw server event checked against `openai.types.live`.

Versions: the `frameworks` extra (pyproject.toml), installed by scripts/test."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from voiceclient.audio.format import API_RATE, dominant_frequency, tone
from voiceclient.server import RealtimeServer
from voiceclient.server.responders import ScenarioResponder

from .conftest import FIXTURES

# The frameworks' own deprecations (pipecat imports audioop, and its old module paths) are not ours to fix.
pytestmark = [pytest.mark.timeout(60), pytest.mark.filterwarnings("ignore::DeprecationWarning")]
SCENARIO = FIXTURES / "scenarios" / "clients.toml"  # a typed turn, a tool turn, a long answer
# 0.3 s of silence, 1 s of 440 Hz, then 1.5 s of silence (a WebSocket server's VAD hears only what is appended)
SPEECH = np.concatenate([np.zeros(7200, np.int16), tone(440, 1.0, API_RATE), np.zeros(36000, np.int16)])


def needs(*modules: str) -> pytest.MarkDecorator:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    return pytest.mark.skipif(
        bool(missing),
        reason=f"{', '.join(missing)} not installed: pip install 'voiceclient[frameworks]' (scripts/test installs it)",
    )


@pytest.fixture
async def scenario_server() -> AsyncIterator[RealtimeServer]:
    async with RealtimeServer(port=0, responder=ScenarioResponder.from_file(SCENARIO), vad="energy") as server:
        yield server


def chunks(pcm: np.ndarray, size: int = 480) -> list[np.ndarray]:
    return [pcm[i : i + size] for i in range(0, pcm.size, size)]


# ---------------------------------------------------------------------------------------------------- pipecat
async def frames_until(frames: asyncio.Queue[Any], kinds: tuple[type, ...], timeout: float = 15) -> list[Any]:
    """pipecat's frames as they come, up to and with the first of `kinds`."""
    got = []
    while True:
        frame = await asyncio.wait_for(frames.get(), timeout)
        got.append(frame)
        if isinstance(frame, kinds):
            return got


def pipecat_weather(llm: Any, calls: list[dict[str, Any]]) -> Any:
    """`get_weather` registered with a pipecat service (each call's arguments kept in `calls`): its tools schema."""
    from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
    from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema

    async def get_weather(params: Any) -> None:
        calls.append(dict(params.arguments))
        await params.result_callback({"city": params.arguments["city"], "forecast": "sunny", "temperature": 22})

    llm.register_function("get_weather", get_weather)
    schema = FunctionSchema(
        name="get_weather",
        description="The weather in a city.",
        properties={"city": {"type": "string"}},
        required=["city"],
    )
    return ToolsSchema(standard_tools=[schema])


def text_and_audio(frames: list[Any], text_kind: Any, audio_kind: Any) -> tuple[str, np.ndarray]:
    """What the frames said: their text, and their audio as 16-bit samples."""
    text = "".join(x.text for x in frames if isinstance(x, text_kind))
    audio = b"".join(x.audio for x in frames if isinstance(x, audio_kind))
    return text, np.frombuffer(audio, "<i2")


@needs("pipecat")
async def test_pipecat_realtime_service_against_the_embedded_server(scenario_server: RealtimeServer) -> None:
    from pipecat.frames import frames as f
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.worker import PipelineParams, PipelineWorker
    from pipecat.processors.aggregators.llm_context import LLMContext
    from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
    from pipecat.services.openai.realtime.llm import OpenAIRealtimeLLMService
    from pipecat.workers.runner import WorkerRunner

    class Speaker(FrameProcessor):
        """Where pipecat's output transport would stand: keeps what the service said and says when the bot
        speaks, as the transport does (the assistant aggregator holds tool results while the bot speaks)."""

        def __init__(self) -> None:
            super().__init__()
            self.frames: asyncio.Queue[Any] = asyncio.Queue()

        async def process_frame(self, frame: Any, direction: Any) -> None:
            await super().process_frame(frame, direction)
            if direction == FrameDirection.DOWNSTREAM:
                self.frames.put_nowait(frame)
            await self.push_frame(frame, direction)
            for kind, spoken in (
                (f.TTSStartedFrame, f.BotStartedSpeakingFrame),
                (f.TTSStoppedFrame, f.BotStoppedSpeakingFrame),
            ):
                if isinstance(frame, kind):
                    await self.push_frame(spoken())
                    await self.push_frame(spoken(), FrameDirection.UPSTREAM)

        async def until(self, kinds: tuple[type, ...], timeout: float = 15) -> list[Any]:
            return await frames_until(self.frames, kinds, timeout)

    def said(frames: list[Any]) -> tuple[str, np.ndarray]:
        return text_and_audio(frames, f.LLMTextFrame, f.TTSAudioRawFrame)

    server = scenario_server
    llm = OpenAIRealtimeLLMService(api_key="sk-test", base_url=f"{server.websocket_url}/realtime")
    calls: list[dict[str, Any]] = []
    tools = pipecat_weather(llm, calls)
    context = LLMContext(messages=[{"role": "user", "content": "Hello there"}], tools=tools)
    pair = LLMContextAggregatorPair(context)
    speaker = Speaker()
    worker = PipelineWorker(
        Pipeline([pair.user(), llm, speaker, pair.assistant()]),
        cancel_on_idle_timeout=False,
        params=PipelineParams(audio_in_sample_rate=API_RATE, audio_out_sample_rate=API_RATE),
    )
    started = asyncio.Event()

    @worker.event_handler("on_pipeline_started")
    async def on_started(worker: Any, frame: Any) -> None:
        started.set()

    runner = WorkerRunner()
    await runner.add_workers(worker)
    running = asyncio.ensure_future(runner.run())
    try:
        await asyncio.wait_for(started.wait(), 10)
        await worker.queue_frame(f.LLMContextFrame(context))
        text, audio = said(await speaker.until((f.TTSStoppedFrame,)))
        assert text == "Hello from the embedded server."
        assert abs(dominant_frequency(audio, API_RATE) - 660) < 5 and audio.size == int(0.8 * API_RATE)

        async def speak() -> None:
            for piece in chunks(SPEECH):
                await worker.queue_frame(
                    f.InputAudioRawFrame(audio=piece.tobytes(), sample_rate=API_RATE, num_channels=1)
                )
                await asyncio.sleep(0.02)  # the pace of a microphone

        await speak()
        text, audio = said(await speaker.until((f.TTSStoppedFrame,)))
        assert calls == [{"city": "Paris"}]  # pipecat ran the tool and sent its output
        assert text == "Paris is sunny, 22 degrees." and abs(dominant_frequency(audio, API_RATE) - 700) < 5

        # The edge: pipecat fails only the retrieve on `item_retrieve_invalid_item_id` (with the event id it gave);
        # any other error code it takes as fatal and stops the session.
        with pytest.raises(Exception, match=r"^Error retrieving item: the item with id 'item_gone' does not exist"):
            await asyncio.wait_for(llm.retrieve_conversation_item("item_gone"), 5)
        await speak()
        frames = await speaker.until((f.TTSStoppedFrame, f.ErrorFrame))
        assert not [x for x in frames if isinstance(x, f.ErrorFrame)]
        assert said(frames)[0] == "This is a long answer that goes on for a while."  # the session goes on
        [session] = list(server.history)
        heard = session.conversation.user_audio()[0]
        assert abs(dominant_frequency(heard[7200:31200], API_RATE) - 440) < 5
    finally:
        await worker.queue_frame(f.EndFrame())
        await asyncio.wait_for(running, 10)


# ---------------------------------------------------------------------------------------------------- LiveKit
@needs("livekit.agents", "livekit.plugins.openai")
async def test_livekit_realtime_model_against_the_embedded_server(
    scenario_server: RealtimeServer, caplog: pytest.LogCaptureFixture
) -> None:
    import aiohttp
    from livekit import rtc
    from livekit.agents import llm
    from livekit.plugins.openai.realtime import RealtimeModel

    @llm.function_tool
    async def get_weather(city: str) -> dict[str, Any]:
        """The weather in a city."""
        return {"city": city, "forecast": "sunny", "temperature": 22}

    async def heard(generation: Any) -> tuple[str, np.ndarray, list[Any]]:
        texts: list[str] = []
        frames: list[bytes] = []
        calls: list[Any] = []

        async def functions() -> None:
            async for call in generation.function_stream:
                calls.append(call)

        async def message(msg: Any) -> None:
            async def text() -> None:
                async for delta in msg.text_stream:
                    texts.append(delta)

            async def audio() -> None:
                async for frame in msg.audio_stream:
                    frames.append(bytes(frame.data))

            await asyncio.gather(text(), audio())

        reading = asyncio.ensure_future(functions())
        async for msg in generation.message_stream:
            await message(msg)
        await reading
        return "".join(texts), np.frombuffer(b"".join(frames), "<i2"), calls

    caplog.set_level(logging.WARNING, logger="livekit")
    server = scenario_server
    async with aiohttp.ClientSession() as http:
        model = RealtimeModel(base_url=server.base_url, api_key="sk-test", http_session=http, model="gpt-realtime")
        session = model.session()
        generations: asyncio.Queue[Any] = asyncio.Queue()
        session.on("generation_created", generations.put_nowait)
        errors: list[Any] = []
        session.on("error", errors.append)
        try:
            chat = llm.ChatContext()
            chat.add_message(role="user", content="Hello there")
            await session.update_chat_ctx(chat)
            await session.update_tools([get_weather])
            text, audio, _ = await heard(await asyncio.wait_for(session.generate_reply(), 10))
            assert text == "Hello from the embedded server."
            assert abs(dominant_frequency(audio, API_RATE) - 660) < 5

            # The edge: an item put first goes out with previous_item_id "root"; the server reports it after null
            # (as the real service does), so LiveKit's copy of the conversation keeps the order it asked for.
            first = llm.ChatMessage(role="user", content=["First of all"], id="item_first")
            chat = session.chat_ctx.copy()
            chat.items.insert(0, first)
            await session.update_chat_ctx(chat)
            assert session.chat_ctx.items[0].id == "item_first"
            assert next(iter(server.sessions.values())).conversation.items[0]["id"] == "item_first"

            while not generations.empty():  # generate_reply's own generation came through the event too
                generations.get_nowait()
            for piece in chunks(SPEECH):
                session.push_audio(rtc.AudioFrame(piece.tobytes(), API_RATE, 1, piece.size))
                await asyncio.sleep(0.02)
            _, _, calls = await heard(await asyncio.wait_for(generations.get(), 10))
            assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", {"city": "Paris"})]
            output = await get_weather(**json.loads(calls[0].arguments))
            chat = session.chat_ctx.copy()
            chat.items.append(
                llm.FunctionCallOutput(
                    call_id=calls[0].call_id, name="get_weather", output=json.dumps(output), is_error=False
                )
            )
            await session.update_chat_ctx(chat)
            text, audio, _ = await heard(await asyncio.wait_for(session.generate_reply(), 10))
            assert text == "Paris is sunny, 22 degrees." and abs(dominant_frequency(audio, API_RATE) - 700) < 5
        finally:
            await session.aclose()
            await model.aclose()
    assert errors == []
    assert not [r for r in caplog.records if "unknown item" in r.getMessage()]


# ---------------------------------------------------------------------------------------------------- GPT-Live
# The same scenario over GPT-Live's WebSocket (`/v1/live/sessions`), with Responses delegation: two spoken turns,
# the first answered, the second a `get_weather` call the framework runs and whose output the answer is made of.
def live_validator(seen: list[dict[str, Any]], bad: list[str]) -> Any:
    """A checker of raw server events against the `openai` SDK's GPT-Live types: keeps each, notes each refusal."""
    from openai.types.live import ServerEvent
    from pydantic import TypeAdapter, ValidationError

    adapter: TypeAdapter[Any] = TypeAdapter(ServerEvent)

    def check(raw: str | bytes | dict[str, Any]) -> None:
        event = raw if isinstance(raw, dict) else json.loads(raw)
        seen.append(event)
        try:
            adapter.validate_python(event)
        except ValidationError as exc:
            bad.append(f"{event.get('type')}: {exc}")

    return check


@needs("pipecat")
async def test_pipecat_live_service_against_the_embedded_server(
    scenario_server: RealtimeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipecat.frames import frames as f
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.worker import PipelineParams, PipelineWorker
    from pipecat.processors.aggregators.llm_context import LLMContext
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
    from pipecat.services.openai.live import events as live_events
    from pipecat.services.openai.live.llm import OpenAILiveLLMService
    from pipecat.services.openai.responses.llm import OpenAIResponsesLLMSettings
    from pipecat.workers.runner import WorkerRunner

    seen: list[dict[str, Any]] = []
    bad: list[str] = []
    check = live_validator(seen, bad)
    parse = live_events.parse_server_event

    def parse_and_check(message: str | bytes) -> Any:
        check(message)
        return parse(message)  # pipecat's own parse: a refusal there is logged and the event dropped

    monkeypatch.setattr(live_events, "parse_server_event", parse_and_check)

    class Listener(FrameProcessor):
        """Where pipecat's output transport would stand: keeps what the service said."""

        def __init__(self) -> None:
            super().__init__()
            self.frames: asyncio.Queue[Any] = asyncio.Queue()

        async def process_frame(self, frame: Any, direction: Any) -> None:
            await super().process_frame(frame, direction)
            if direction == FrameDirection.DOWNSTREAM:
                self.frames.put_nowait(frame)
            await self.push_frame(frame, direction)

        async def until(self, kinds: tuple[type, ...], timeout: float = 15) -> list[Any]:
            return await frames_until(self.frames, kinds, timeout)

    def said(frames: list[Any]) -> tuple[str, np.ndarray]:
        return text_and_audio(frames, f.LLMTextFrame, f.SpeechOutputAudioRawFrame)

    server = scenario_server
    llm = OpenAILiveLLMService(
        api_key="sk-test",
        base_url=f"{server.websocket_url}/live/sessions",
        settings=OpenAILiveLLMService.Settings(system_instruction="Be brief."),
        delegation=OpenAILiveLLMService.ResponsesDelegation(settings=OpenAIResponsesLLMSettings(model="gpt-5-mini")),
    )
    calls: list[dict[str, Any]] = []
    tools = pipecat_weather(llm, calls)
    context = LLMContext(tools=tools)
    listener = Listener()
    worker = PipelineWorker(
        Pipeline([llm, listener]),
        cancel_on_idle_timeout=False,
        params=PipelineParams(audio_in_sample_rate=API_RATE, audio_out_sample_rate=API_RATE),
    )
    started = asyncio.Event()

    @llm.event_handler("on_session_started")
    async def on_started(service: Any, session: Any) -> None:
        started.set()

    async def speak() -> None:
        for piece in chunks(SPEECH):
            await worker.queue_frame(f.InputAudioRawFrame(audio=piece.tobytes(), sample_rate=API_RATE, num_channels=1))
            await asyncio.sleep(0.02)  # the pace of a microphone

    runner = WorkerRunner()
    await runner.add_workers(worker)
    running = asyncio.ensure_future(runner.run())
    try:
        await worker.queue_frame(f.LLMContextFrame(context))  # the first context starts the session
        await asyncio.wait_for(started.wait(), 10)
        await speak()
        text, audio = said(await listener.until((f.TTSStoppedFrame,)))
        assert text == "Hello from the embedded server."
        assert abs(dominant_frequency(audio, API_RATE) - 660) < 5

        await speak()
        text, audio = said(await listener.until((f.TTSStoppedFrame,)))
        assert calls == [{"city": "Paris"}]  # pipecat ran the delegated call and sent its output
        assert text == "Paris is sunny, 22 degrees." and abs(dominant_frequency(audio, API_RATE) - 700) < 5
    finally:
        await worker.queue_frame(f.EndFrame())  # pipecat sends session.close and waits for session.closed
        await asyncio.wait_for(running, 15)
    kinds = [e["type"] for e in seen]
    assert bad == []
    assert kinds[0] == "session.started" and kinds[-1] == "session.closed"
    assert seen[0]["session"]["delegation"]["type"] == "responses"
    assert seen[0]["session"]["instructions"] == "Be brief."
    assert "session.delegation.created" in kinds and "response.event" in kinds
    [session] = list(server.history)
    heard = session.conversation.user_audio()[0]
    assert abs(dominant_frequency(heard[7200:31200], API_RATE) - 440) < 5
    outputs = [it for it in session.conversation.items if it["type"] == "function_call_output"]
    assert [json.loads(o["output"]) for o in outputs] == [{"city": "Paris", "forecast": "sunny", "temperature": 22}]


@needs("livekit.agents", "livekit.plugins.openai")
async def test_livekit_gpt_live_model_against_the_embedded_server(
    scenario_server: RealtimeServer, caplog: pytest.LogCaptureFixture
) -> None:
    import aiohttp
    from livekit import rtc
    from livekit.agents import llm
    from livekit.plugins.openai.realtime import GPTLiveModel

    @llm.function_tool
    async def get_weather(city: str) -> dict[str, Any]:
        """The weather in a city."""
        return {"city": city, "forecast": "sunny", "temperature": 22}

    seen: list[dict[str, Any]] = []
    bad: list[str] = []
    caplog.set_level(logging.WARNING, logger="livekit")
    server = scenario_server
    async with aiohttp.ClientSession() as http:
        model = GPTLiveModel(
            base_url=server.base_url,
            api_key="sk-test",
            http_session=http,
            delegation="responses",
            responses_options={"model": "gpt-5-mini"},
        )
        session = model.session()
        session.on("openai_server_event_received", live_validator(seen, bad))
        errors: list[Any] = []
        session.on("error", errors.append)
        texts: list[str] = []
        turn_over: asyncio.Queue[str] = asyncio.Queue()
        calls: list[Any] = []
        tool_runs: list[asyncio.Future[None]] = []

        def on_delta(delta: Any) -> None:
            texts.append(delta.text)

        def on_call(call: Any) -> None:
            calls.append(call)

            async def run() -> None:  # what the agent's adapter does: run the tool, append its output
                output = await get_weather(**json.loads(call.arguments))
                await session._append_items(
                    [
                        llm.FunctionCallOutput(
                            call_id=call.call_id, name=call.name, output=json.dumps(output), is_error=False
                        )
                    ]
                )

            tool_runs.append(asyncio.ensure_future(run()))

        def on_event(event: dict[str, Any]) -> None:
            if event["type"] == "session.usage.updated":  # after each answer
                turn_over.put_nowait("".join(texts))
                texts.clear()

        async def answer() -> str:
            """What the model said in its next answer (usage that follows no words, as a delegation's, is skipped)."""
            while not (said := await asyncio.wait_for(turn_over.get(), 15)):
                pass
            return said

        session.on("transcript_delta", on_delta)
        session.on("function_call", on_call)
        session.on("openai_server_event_received", on_event)
        audio: list[bytes] = []

        async def collect() -> None:
            async for frame in session.audio_stream:
                audio.append(bytes(frame.frame.data))

        collecting = asyncio.ensure_future(collect())
        try:
            # What the agent's adapter does first: the whole configuration at once, which starts the session.
            await session._update_session(
                instructions="Be brief.", chat_ctx=llm.ChatContext.empty(), tools=[get_weather]
            )

            async def speak() -> None:
                for piece in chunks(SPEECH):
                    session.push_audio(rtc.AudioFrame(piece.tobytes(), API_RATE, 1, piece.size))
                    await asyncio.sleep(0.02)

            await speak()
            assert await answer() == "Hello from the embedded server."
            first = np.frombuffer(b"".join(audio), "<i2")
            audio.clear()
            assert abs(dominant_frequency(first, API_RATE) - 660) < 5
            await speak()
            assert await answer() == "Paris is sunny, 22 degrees."
            assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", {"city": "Paris"})]
            await asyncio.gather(*tool_runs)
            second = np.frombuffer(b"".join(audio), "<i2")
            assert abs(dominant_frequency(second, API_RATE) - 700) < 5
        finally:
            await session.aclose()  # LiveKit sends session.close and waits for session.closed
            await model.aclose()
            await asyncio.wait_for(collecting, 5)
    kinds = [e["type"] for e in seen]
    assert errors == [] and bad == []
    assert kinds[0] == "session.started" and kinds[-1] == "session.closed"
    assert seen[0]["session"]["delegation"]["responses"]["tools"][0]["name"] == "get_weather"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], [r.getMessage() for r in caplog.records]
    [ended] = list(server.history)
    outputs = [it for it in ended.conversation.items if it["type"] == "function_call_output"]
    assert [json.loads(o["output"]) for o in outputs] == [{"city": "Paris", "forecast": "sunny", "temperature": 22}]


@needs("livekit.agents", "livekit.plugins.openai")
async def test_livekit_gpt_live_delegation_to_the_application(
    scenario_server: RealtimeServer, caplog: pytest.LogCaptureFixture
) -> None:
    """LiveKit's `delegation="client"`: the planned call comes as `delegation_created`, and what the application
    appends with `append_commentary` under its id is what the model says."""
    import aiohttp
    from livekit import rtc
    from livekit.agents import llm
    from livekit.plugins.openai.realtime import GPTLiveModel

    seen: list[dict[str, Any]] = []
    bad: list[str] = []
    caplog.set_level(logging.WARNING, logger="livekit")
    server = scenario_server
    async with aiohttp.ClientSession() as http:
        model = GPTLiveModel(base_url=server.base_url, api_key="sk-test", http_session=http, delegation="client")
        session = model.session()
        session.on("openai_server_event_received", live_validator(seen, bad))
        errors: list[Any] = []
        session.on("error", errors.append)
        texts: list[str] = []
        turn_over: asyncio.Queue[str] = asyncio.Queue()
        delegations: list[Any] = []

        def on_delegation(delegation: Any) -> None:
            delegations.append(delegation)
            session.append_commentary("Paris is sunny, 22 degrees.", delegation_id=delegation.id)

        def on_event(event: dict[str, Any]) -> None:
            if event["type"] == "session.usage.updated":  # after each answer
                turn_over.put_nowait("".join(texts))
                texts.clear()

        async def answer() -> str:
            """What the model said in its next answer (usage that follows no words, as a delegation's, is skipped)."""
            while not (said := await asyncio.wait_for(turn_over.get(), 15)):
                pass
            return said

        async def speak() -> None:
            for piece in chunks(SPEECH):
                session.push_audio(rtc.AudioFrame(piece.tobytes(), API_RATE, 1, piece.size))
                await asyncio.sleep(0.02)

        session.on("transcript_delta", lambda delta: texts.append(delta.text))
        session.on("delegation_created", on_delegation)
        session.on("openai_server_event_received", on_event)
        try:
            await session._update_session(instructions="Be brief.", chat_ctx=llm.ChatContext.empty(), tools=[])
            await speak()
            assert await answer() == "Hello from the embedded server."
            await speak()
            assert await answer() == "Paris is sunny, 22 degrees."  # the application's commentary, said
        finally:
            await session.aclose()
            await model.aclose()
    kinds = [e["type"] for e in seen]
    assert errors == [] and bad == []
    assert seen[0]["session"]["delegation"] == {"type": "client"}
    [created] = [e for e in seen if e["type"] == "session.delegation.created"]
    assert created["delegation"]["target"] == "client" and [d.id for d in delegations] == [created["delegation"]["id"]]
    assert "session.commentary.appended" in kinds and kinds[-1] == "session.closed"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], [r.getMessage() for r in caplog.records]
