"""`--agent module:attr` for `voiceclient call` and `talk`: an Agents SDK `RealtimeAgent` through `WebRTCModel`.

`load_agent` finds the agent; `AgentSession` runs a `RealtimeRunner` over a `WebRTCModel` and follows the SDK's
session events (the agent answering, handoffs, tool calls, guardrail trips, errors) as lines for the terminal.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol

from agents.realtime import RealtimeAgent, RealtimeRunner, RealtimeSession
from agents.realtime.config import RealtimeRunConfig

from voiceclient.agents.model import WebRTCModel
from voiceclient.client.call import VoiceCall
from voiceclient.errors import ConfigError
from voiceclient.loading import import_user_module

log = logging.getLogger(__name__)


class Transcript(Protocol):
    """Where `call_with_agent` says the call (the CLI's `TranscriptPrinter`: the caller passes it in, so this
    layer does not reach up into the app's)."""

    foreign_calls: bool

    def line(self, text: str) -> None:
        """Say one line."""

    def attach(self, call: VoiceCall) -> None:
        """Follow `call`'s events (its transcripts)."""


def load_agent(spec: str) -> RealtimeAgent[Any]:
    """`package.module:attr` or `path/file.py:attr`; `attr` is a `RealtimeAgent` or a function returning one."""
    where, sep, attr = spec.rpartition(":")
    if not sep or not where or not attr:
        raise ConfigError(f"--agent {spec}: expected module:attr or path/file.py:attr")
    module = import_user_module(where, f"--agent {spec}", "voiceclient_agent_")
    obj = getattr(module, attr, None)
    if obj is None:
        raise ConfigError(f"--agent {spec}: {where} has no {attr}")
    if callable(obj) and not isinstance(obj, RealtimeAgent):
        obj = obj()
    if not isinstance(obj, RealtimeAgent):
        raise ConfigError(f"--agent {spec}: expected a RealtimeAgent, not {type(obj).__name__}")
    return obj


class AgentSession:
    """A `RealtimeRunner` session over `model`, with its events said as lines (`line`) and counted."""

    def __init__(
        self,
        agent: RealtimeAgent[Any],
        model: WebRTCModel,
        line: Callable[[str], None],
        run_config: RealtimeRunConfig | None = None,
    ) -> None:
        self.agent = agent
        self.model = model
        self.line = line
        self.runner = RealtimeRunner(agent, model=model, config=run_config)
        self.session: RealtimeSession | None = None
        self.current_agent = agent.name
        self.handoffs: list[tuple[str, str]] = []
        self.tools: list[str] = []
        self.tools_running: set[str] = set()
        self.guardrails_tripped: list[str] = []
        self.errors: list[str] = []
        self._follower: asyncio.Task[None] | None = None
        self.failure: BaseException | None = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[VoiceCall]:
        """Connect (the call under the model), follow the SDK's events, close on the way out."""
        session = await self.runner.run()
        self.session = session
        async with session:
            self._follower = asyncio.get_running_loop().create_task(self._follow(session), name="agent events")
            try:
                yield self.model.call
            finally:
                self._follower.cancel()
                try:
                    await self._follower
                except (asyncio.CancelledError, Exception):
                    pass

    async def _follow(self, session: RealtimeSession) -> None:
        try:
            async for event in session:
                self.on_event(event)
        except Exception as exc:  # the SDK raises what the model reported (the call failed)
            self.failure = exc
            self.line(f"agent: the session ended: {exc}")

    def on_event(self, event: Any) -> None:
        kind = event.type
        if kind == "agent_start":
            if event.agent.name != self.current_agent:
                self.current_agent = event.agent.name
        elif kind == "handoff":
            self.handoffs.append((event.from_agent.name, event.to_agent.name))
            self.current_agent = event.to_agent.name
            self.line(f"agent: handoff {event.from_agent.name} -> {event.to_agent.name}")
        elif kind == "tool_start":
            name = event.tool.name
            self.tools_running.add(name)
            self.line(f"agent: {event.agent.name} calls {name}({event.arguments})")
        elif kind == "tool_end":
            name = event.tool.name
            self.tools.append(name)
            self.tools_running.discard(name)
            self.line(f"agent: {name} -> {event.output}")
        elif kind == "guardrail_tripped":
            names = ", ".join(r.guardrail.get_name() for r in event.guardrail_results)
            self.guardrails_tripped.append(names)
            self.line(f"agent: guardrail {names} tripped on {event.message[:80]!r}; the answer was stopped")
        elif kind == "error":
            text = getattr(event.error, "message", None) or str(event.error)
            self.errors.append(text)
            self.line(f"agent: error: {text}")
        elif kind == "tool_approval_required":
            self.line(f"agent: {event.tool.name} needs approval (the SDK's approval API; not asked here)")

    async def send_message(self, text: str) -> None:
        if self.session is not None:
            await self.session.send_message(text)

    async def interrupt(self) -> None:
        if self.session is not None:
            await self.session.interrupt()


async def call_with_agent(
    agent: RealtimeAgent[Any],
    model: WebRTCModel,
    printer: Transcript,
    idle_exit: float,
    max_duration: float | None,
) -> AgentSession:
    """`voiceclient call --agent`: the agent answers the call's WAV; hang up when the conversation is idle."""
    printer.foreign_calls = False
    runner = AgentSession(agent, model, printer.line)
    async with runner.running() as call:
        printer.attach(call)
        printer.line(
            f"connected in {call.connect_seconds:.2f} s (call {call.call_id}); agent {agent.name!r} "
            "through the Agents SDK"
        )
        reason = await call.run_until_idle(idle_exit, max_duration)
        printer.line("hanging up: " + ("conversation idle" if reason == "idle" else "--max-duration reached"))
    if runner.failure is not None:
        raise runner.failure
    return runner
