from __future__ import annotations

import asyncio
import enum
import json
from typing import Literal

import pytest
from pydantic import BaseModel

from voiceclient import ToolDefinitionError, tool
from voiceclient.tools.plugins import load_all, load_tools
from voiceclient.tools.runner import serialise

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
    assert (
        await forecast.invoke('{"place": {"city": "Oslo"}, "days": 2, "unit": "fahrenheit"}')
        == "Oslo 2 fahrenheit short"
    )

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


# ----------------------------------------------------------------------------------------------- schemas
from typing import Annotated, Optional  # noqa: E402

from pydantic import Field  # noqa: E402

from voiceclient.tools import ApprovalDecision, ApprovalRequest, ToolContext, policy  # noqa: E402
from voiceclient.tools.approvals import decide  # noqa: E402
from voiceclient.tools.registry import parse_docstring  # noqa: E402


def test_argument_descriptions_from_annotated_field_and_docstrings() -> None:
    @tool
    def google(
        a: int,
        b: Annotated[str, "from Annotated"],
        c: Annotated[float, Field(ge=0, description="f")] = 1.0,
        d: Optional[list[int]] = None,  # noqa: UP045 (users write Optional)
    ) -> None:
        """Does things.

        More detail here.

        Args:
            a (int): from the docstring,
                continued.
            b: ignored, Annotated wins
        Returns:
            nothing
        """

    props = google.parameters["properties"]
    assert google.description == "Does things.\n\nMore detail here."
    assert props["a"] == {"description": "from the docstring, continued.", "type": "integer"}
    assert props["b"]["description"] == "from Annotated"
    assert props["c"] == {"default": 1.0, "description": "f", "minimum": 0.0, "type": "number"}
    assert props["d"]["anyOf"] == [{"items": {"type": "integer"}, "type": "array"}, {"type": "null"}]
    assert google.parameters["required"] == ["a", "b"]

    def sphinx(x: str) -> None:
        """Sphinx style.

        :param x: the x
        """

    assert parse_docstring(sphinx.__doc__ or "") == ("Sphinx style.", {"x": "the x"})


def test_context_parameter_is_not_in_the_schema_and_must_come_first() -> None:
    @tool
    def with_ctx(ctx: ToolContext, q: str) -> str:
        return ctx.arguments

    assert list(with_ctx.parameters["properties"]) == ["q"] and with_ctx.wants_context

    def misplaced(q: str, ctx: ToolContext) -> None: ...

    with pytest.raises(ToolDefinitionError, match="first parameter"):
        tool(misplaced)
    with pytest.raises(ToolDefinitionError, match="timeout"):
        tool(timeout=0)(lambda: None)


def test_unserialisable_results_and_big_results() -> None:
    import dataclasses

    @dataclasses.dataclass
    class Point:
        x: int

    assert serialise(Point(3)) == '{"x": 3}'
    cut = json.loads(serialise(list(range(10000)), limit=100))
    assert cut["truncated"] is True and cut["original_chars"] > 100 and len(cut["output"]) == 100


async def test_approvals_normalise_answers_and_failures() -> None:
    req = ApprovalRequest("function", "c1", "f", "{}")
    assert (await decide(policy("always"), req)).approve
    assert not (await decide(policy("never"), req)).approve
    assert not (await decide(None, req)).approve

    async def boom(r: ApprovalRequest) -> bool:
        raise RuntimeError("ui crashed")

    assert "ui crashed" in (await decide(boom, req)).reason

    async def slow(r: ApprovalRequest) -> bool:
        await asyncio.sleep(5)
        return True

    assert not (await decide(slow, req, timeout=0.05)).approve

    async def plain(r: ApprovalRequest) -> bool:
        return True

    assert await decide(plain, req) == ApprovalDecision(True)
    with pytest.raises(ValueError):
        policy("sometimes")
