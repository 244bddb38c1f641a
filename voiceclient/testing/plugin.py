"""The pytest plugin for voice tests against the embedded server. Installing voiceclient registers it (entry point
`voiceclient` in `pytest11`, as pytest-asyncio and pytest-timeout do); `-p no:voiceclient` switches it off.

Fixtures (each server on 127.0.0.1 and a free port, so pytest-xdist workers never collide; the offline speech
models load once per process, so once per xdist worker):
- `realtime_server`: the echo responder with energy turn detection.
- `agent_server`: the offline agent (Silero VAD, speech-to-text, a neural voice).
- `voice_server`: a factory, `await voice_server(scenario="rules.toml", faults=[...], agent=True, ...)`;
  `network="bad-wifi"` (a profile or spec, as `serve --network`) puts every call on an emulated bad network.
- `scripted_call`: `await scripted_call(server, "question.wav", session=..., tools=[...])`, a
  `voiceclient.testing.ScriptedCallResult` with its files under the test's tmp_path. When the test fails, the
  report names the conversation WAV, event log and timeline page (`voiceclient report`) of every call it made,
  kept there for you to listen to and look at.

Async fixtures through pytest-asyncio, so they work in its default strict mode (mark your tests
`@pytest.mark.asyncio`) and in auto mode. The only module of voiceclient that imports pytest. It imports nothing
else at load time: a suite that does not use these fixtures pays nothing for them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

try:  # async fixtures that work in pytest-asyncio's strict mode (its default) as well as in auto mode
    from pytest_asyncio import fixture as async_fixture
except ImportError:  # pragma: no cover - the `test` extra brings pytest-asyncio
    async_fixture = pytest.fixture  # type: ignore[assignment]

if TYPE_CHECKING:
    from voiceclient.server import RealtimeServer
    from voiceclient.server.faults import FaultSpec
    from voiceclient.testing.calls import ScriptedCallResult

_CALLS = pytest.StashKey[list["ScriptedCallResult"]]()

ServerFactory = Callable[..., Awaitable["RealtimeServer"]]
ScriptedCall = Callable[..., Awaitable["ScriptedCallResult"]]


@async_fixture
async def voice_server() -> AsyncIterator[ServerFactory]:
    """A factory of embedded servers, all closed at the end of the test:
    `await voice_server()` (echo), `await voice_server(agent=True)`, `await voice_server(scenario=PATH)` (scripted
    turns or agent rules), `faults=[FaultSpec(...)]`, `network="wifi"` (a bad network, `server/network.py`; what it
    did is each call's `network` in `server.history`), and any other keyword of `RealtimeServer`."""
    from voiceclient.server import RealtimeServer

    servers: list[RealtimeServer] = []

    async def make(
        *, scenario: str | Path | None = None, agent: bool = False, faults: list[FaultSpec] | None = None, **kwargs: Any
    ) -> RealtimeServer:
        from voiceclient.server.faults import FaultPlan
        from voiceclient.server.responders import listens
        from voiceclient.speech.agent import responder_for, scenario_faults

        responder = responder_for(scenario, agent)
        speech = kwargs.pop("speech", None)
        if speech is None and (agent or listens(responder)):
            from voiceclient.testing.speech import speech_backends

            speech = speech_backends()
        plan = FaultPlan(scenario_faults(responder) + list(faults or []))
        server = RealtimeServer(port=0, responder=responder, speech=speech, faults=plan, **kwargs)
        await server.start()
        servers.append(server)
        return server

    try:
        yield make
    finally:
        for server in reversed(servers):
            await server.close()


@async_fixture
async def realtime_server(voice_server: ServerFactory) -> RealtimeServer:
    """The embedded server with the echo responder and energy VAD."""
    return await voice_server()


@async_fixture
async def agent_server(voice_server: ServerFactory) -> RealtimeServer:
    """The embedded server with the offline agent (Silero VAD, STT, TTS)."""
    return await voice_server(agent=True)


@pytest.fixture
def scripted_call(request: pytest.FixtureRequest, tmp_path: Path) -> ScriptedCall:
    """`await scripted_call(server_or_base_url, wav, **options)`: see `voiceclient.testing.run_scripted_call`."""
    made: list[ScriptedCallResult] = request.node.stash.setdefault(_CALLS, [])

    async def call(server: RealtimeServer | str, wav: str | Path, **options: Any) -> ScriptedCallResult:
        from voiceclient.testing.calls import run_scripted_call

        url = server if isinstance(server, str) else server.base_url
        options.setdefault("name", f"{len(made) + 1}-{Path(wav).stem}")
        result = await run_scripted_call(url, wav, directory=tmp_path, **options)
        made.append(result)
        return result

    return call


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    made = item.stash.get(_CALLS, None)
    if made and report.failed and report.when == "call":
        lines = []
        for r in made:
            try:
                timeline = f", timeline {r.report()}"
            except Exception as exc:  # the report must not hide the failure it is about
                timeline = f" (no timeline: {exc})"
            lines.append(f"{r.input_wav.name}: {r.where()}{timeline}")
        report.sections.append(("voiceclient: the calls of this test, kept", "\n".join(lines)))
    return report
