from __future__ import annotations

import asyncio
import enum
import json
from typing import Literal

import pytest
from pydantic import BaseModel

from voiceclient import ToolDefinitionError, tool
from voiceclient.events import models as ev
from voiceclient.tools.plugins import load_all, load_tools
from voiceclient.tools.runner import ToolRunner, serialise

pytestmark = pytest.mark.timeout(10)


class Unit(enum.Enum):
    C = "celsius"
    F = "fahrenheit"


class Place(BaseModel):
    city: str
    country: str | None = None


@tool
def forecast(place: Place, days: int, unit: Unit = Unit.C, detail: Literal["short", "long"] = "short") -> str:
    """Forecast for a place."""
    return f"{place.city} {days} {unit.value} {detail}"


def test_schema_from_type_hints() -> None:
    d = forecast.definition.to_wire()
    assert d["name"] == "forecast" and d["description"] == "Forecast for a place."
    params = d["parameters"]
    assert params["type"] == "object" and params["required"] == ["place", "days"]
    assert params["properties"]["days"] == {"type": "integer"}
    assert params["properties"]["detail"] == {"default": "short", "enum": ["short", "long"], "type": "string"}
    assert "$defs" in params and "title" not in json.dumps(params)
    assert forecast(Place(city="x"), 1) == "x 1 celsius short"  # still a plain function


async def test_invoke_validates_then_runs_sync_off_the_loop_and_async_on_it() -> None:
    assert await forecast.invoke('{"place": {"city": "Oslo"}, "days": 2, "unit": "fahrenheit"}') == \
        "Oslo 2 fahrenheit short"

    @tool(name="adder", description="Adds.")
    async def add(a: int, b: int = 1) -> int:
        return a + b

    assert add.name == "adder" and await add.invoke('{"a": 2}') == 3
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        await add.invoke('{"a": "x"}')


def test_bad_tool_definitions() -> None:
    with pytest.raises(ToolDefinitionError, match="named argument"):
        tool(lambda *args: None)
    with pytest.raises(ToolDefinitionError, match="tool name"):
        tool(name="has space")(lambda: None)


def test_serialise() -> None:
    assert serialise("hi") == '"hi"'
    assert serialise(Place(city="a")) == '{"city":"a","country":null}'
    big = serialise("x" * 20000)
    assert json.loads(big)["truncated"] is True


def done_event(kind: str, **fields) -> object:
    base = {"event_id": "e", "type": kind}
    return ev.parse_server_event(json.dumps({**base, **fields}))


async def test_runner_one_output_per_call_and_one_response_create() -> None:
    sent: list[ev.ClientEvent] = []

    @tool
    async def slow(x: int) -> int:
        await asyncio.sleep(0.05)
        return x * 2

    @tool
    def hangs() -> None:
        import time

        time.sleep(0.5)

    runner = ToolRunner([slow, hangs], sent.append, timeout=0.2)
    args = {"response_id": "r1", "item_id": "i", "output_index": 0}
    runner.on_event(done_event("response.function_call_arguments.done", call_id="c1", name="slow",
                               arguments='{"x": 2}', **args))
    runner.on_event(done_event("response.function_call_arguments.done", call_id="c2", name="missing",
                               arguments="{}", **args))
    runner.on_event(done_event("response.function_call_arguments.done", call_id="c3", name="hangs",
                               arguments="{}", **args))
    runner.on_event(done_event("response.function_call_arguments.done", call_id="c4", name="slow",
                               arguments="{not json", **args))
    runner.on_event(done_event("response.done", response={"id": "r1", "status": "completed"}))
    assert runner.busy
    for _ in range(100):
        if len(sent) == 5:
            break
        await asyncio.sleep(0.02)
    outputs = {e.item.call_id: json.loads(e.item.output) for e in sent if isinstance(e, ev.ConversationItemCreate)}
    assert outputs["c1"] == 4
    assert "unknown tool" in outputs["c2"]["error"]
    assert "timed out" in outputs["c3"]["error"]
    assert "not valid JSON" in outputs["c4"]["error"]
    assert [type(e).__name__ for e in sent].count("ResponseCreate") == 1 and isinstance(sent[-1], ev.ResponseCreate)
    assert not runner.busy
    # The server refuses the create (a VAD response is running): retried once after that response is done.
    runner.on_event(done_event("error", error={"type": "invalid_request_error", "message": "busy",
                                               "code": "conversation_already_has_active_response",
                                               "event_id": sent[-1].event_id}))
    runner.on_event(done_event("response.done", response={"id": "r2", "status": "completed"}))
    assert isinstance(sent[-1], ev.ResponseCreate) and len(sent) == 6
    await runner.close()


async def test_cancelled_response_gets_outputs_but_no_new_response() -> None:
    sent: list[ev.ClientEvent] = []

    @tool
    def quick() -> str:
        return "ok"

    runner = ToolRunner([quick], sent.append)
    runner.on_event(done_event("response.function_call_arguments.done", call_id="c1", name="quick",
                               arguments="{}", response_id="r1", item_id="i", output_index=0))
    runner.on_event(done_event("response.done", response={"id": "r1", "status": "cancelled"}))
    for _ in range(50):
        if sent:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert [type(e).__name__ for e in sent] == ["ConversationItemCreate"]


def test_plugins_from_file_and_module(tmp_path, monkeypatch) -> None:
    f = tmp_path / "mytools.py"
    f.write_text("from voiceclient import tool\n@tool\ndef ping() -> str:\n    '''Ping.'''\n    return 'pong'\n")
    assert [t.name for t in load_tools(str(f))] == ["ping"]
    monkeypatch.syspath_prepend(str(tmp_path))
    assert [t.name for t in load_tools("mytools")] == ["ping"]
    with pytest.raises(Exception, match="defined twice"):
        load_all([str(f), "mytools"])
    with pytest.raises(Exception, match="cannot import"):
        load_tools("no_such_module_xyz")
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    with pytest.raises(Exception, match="no @tool"):
        load_tools(str(empty))
