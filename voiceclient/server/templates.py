"""The templates of scenario and agent files: checked when the file loads, filled when a reply is said.

    fields = Fields({"transcript": TEXT, "output": JSON})
    check("It is {output[forecast]}.", fields)       # at load time; {outptu[x]} would be a TemplateError
    fill("It is {output[forecast]}.", {"output": {"forecast": "sunny"}})   # "It is sunny."

Each place a template is used has its fields (`Fields`): text (`{transcript}`, `{previous}`, a pattern's `{city}`),
the user's earlier turns by number (`{earlier[0]}`), a tool's output as JSON (`{output}`, `{output[city]}`) and
the outputs by tool name (`{outputs[get_weather][forecast]}`). A name that is not there, a key where there is
none, or a lone brace is an error when the file loads, not a brace said in a call.

When a reply is said, a value that is not there is never said as a brace:
- an earlier turn not said yet is empty, as `{previous}` is on the first turn; so is a pattern's group that took
  no part in the match;
- a tool's value that is missing, null or empty (the tool failed, returned `{}` or other keys) raises `Unfilled`,
  and the responder says what the tools returned instead (`tool_report`): "get weather failed: no such city."
Values are said as words: an object as "city: Paris, forecast: sunny", a list as "a, b", true and false as yes
and no.
"""

from __future__ import annotations

import difflib
import importlib
import json
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pydantic_core import PydanticCustomError

_string: Any = importlib.import_module("_string")  # str.format's own field-name parser (no type stub)


class Kind(Enum):
    """What a field holds, which decides the keys it takes."""

    TEXT = "text"  # {transcript}: no key
    TEXTS = "texts"  # {earlier[0]}: a turn number
    JSON = "json"  # {output}, {output[city]}, {output[items][0]}: any keys
    BY_TOOL = "by tool"  # {outputs[get_weather][forecast]}: a tool's name, then any keys


TEXT, TEXTS, JSON, BY_TOOL = Kind.TEXT, Kind.TEXTS, Kind.JSON, Kind.BY_TOOL
TOOL_FIELDS = ("output", "outputs")  # the fields a tool fills: missing there is `Unfilled`, elsewhere empty
_SHOWN = {TEXT: "{{{}}}", TEXTS: "{{{}[N]}}", JSON: "{{{}[KEY]}}", BY_TOOL: "{{{}[TOOL][KEY]}}"}


class TemplateError(ValueError):
    """A template that names a field that is not there, or cannot be parsed."""


class Unfilled(LookupError):
    """A tool's value a template asks for is not in its output."""

    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


@dataclass(frozen=True)
class Fields:
    """The fields a template may use where it is used; `tools`: the names `outputs[...]` takes (any, if empty)."""

    kinds: Mapping[str, Kind]
    tools: tuple[str, ...] = ()

    def __add__(self, other: Fields) -> Fields:
        return Fields({**self.kinds, **other.kinds}, self.tools + other.tools)

    def describe(self) -> str:
        shown = []
        for name, kind in self.kinds.items():
            if kind is BY_TOOL and self.tools:
                shown += [f"{{{name}[{tool}][KEY]}}" for tool in dict.fromkeys(self.tools)]
            else:
                shown.append(_SHOWN[kind].format(name))
        return ", ".join(shown) if shown else "none"


def _near(word: object, choices: Iterable[str]) -> str:
    found = difflib.get_close_matches(str(word), list(choices), n=1)
    return f" (did you mean {found[0]}?)" if found else ""


def _check_field(name: str, fields: Fields) -> None:
    first, rest = _string.formatter_field_name_split(name)
    keys: list[tuple[bool, Any]] = list(rest)
    shown = "{" + name + "}"
    if first == "" or isinstance(first, int):
        raise TemplateError(f"{shown} has no field name; the fields here: {fields.describe()}")
    kind = fields.kinds.get(first)
    if kind is None:
        raise TemplateError(f"unknown field {shown}{_near(first, fields.kinds)}; the fields here: {fields.describe()}")
    if any(is_attribute for is_attribute, _ in keys):
        raise TemplateError(f"{shown}: write [key], not .key")
    if kind is TEXT and keys:
        raise TemplateError(f"{shown}: {{{first}}} is text and takes no [key]")
    if kind is TEXTS and (len(keys) > 1 or (keys and not isinstance(keys[0][1], int))):
        raise TemplateError(f"{shown}: {{{first}}} takes a turn's number: {{{first}[0]}} is the first")
    if kind is BY_TOOL and keys and fields.tools and keys[0][1] not in fields.tools:
        tool = keys[0][1]
        raise TemplateError(
            f"{shown}: no call of {tool} here{_near(tool, fields.tools)}; the fields here: {fields.describe()}"
        )


def check(text: str, fields: Fields) -> None:
    """Raise `TemplateError` if `text` uses a field that `fields` does not have, or does not parse."""
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise TemplateError(f"a lone brace in {text!r} ({exc}); write {{{{ or }}}} for the character") from None
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        _check_field(name, fields)
        if conversion is not None:
            raise TemplateError(f"{{{name}!{conversion}}}: a value is said as words; leave out the !{conversion}")
        if spec:
            check(spec, fields)  # a spec may hold fields too: {output[t]:.{digits}f}
            kind = fields.kinds[_string.formatter_field_name_split(name)[0]]
            if kind in (TEXT, TEXTS) and "{" not in spec:
                try:
                    format("text", spec)
                except ValueError as exc:
                    raise TemplateError(f"{{{name}:{spec}}}: {exc}") from None


def check_places(places: Iterable[tuple[str, str | None, Fields]]) -> None:
    """Check each (where, template, its fields) of a file's model; the first problem is a pydantic error whose
    message names the place (`describe_error` shows it as it is)."""
    for where, text, fields in places:
        if text is None:
            continue
        try:
            check(text, fields)
        except TemplateError as exc:
            raise PydanticCustomError("explained", "{problem}", {"problem": f"{where}: {exc}"}) from None


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, (str, dict, list)) and not value)


def speakable(value: Any) -> str:
    """A JSON value as words: "city: Paris, forecast: sunny", "a, b", yes/no."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if _empty(value):
        return "nothing"
    if isinstance(value, dict):
        return ", ".join(f"{str(k).replace('_', ' ')}: {speakable(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(speakable(v) for v in value)
    return str(value)


class _Filler(string.Formatter):
    def get_field(self, field_name: str, args: Any, kwargs: Any) -> Any:
        first = _string.formatter_field_name_split(field_name)[0]
        try:
            value, _ = super().get_field(field_name, args, kwargs)
        except (KeyError, IndexError, TypeError, AttributeError):
            value = None
        if _empty(value) if first in TOOL_FIELDS else value is None:
            if first in TOOL_FIELDS:
                raise Unfilled(field_name)
            value = ""
        return value, first

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        return value  # no repr() said aloud (a checked template has no conversion)

    def format_field(self, value: Any, format_spec: str) -> Any:
        if isinstance(value, (bool, dict, list)):
            value = speakable(value)
        try:
            return super().format_field(value, format_spec)
        except ValueError:  # a spec that does not suit what the tool returned: the value as it is
            return speakable(value)


_FILLER = _Filler()


def fill(text: str, values: Mapping[str, Any]) -> str:
    """`text` with its fields filled from `values` (see the module's docstring for a value that is not there).
    Raises `Unfilled` when a tool's value is missing."""
    try:
        return _FILLER.vformat(text, (), values)
    except ValueError:  # a lone brace (a file's templates are checked when it loads): no brace is said
        return text.replace("{", "").replace("}", "")


def parse_output(out: str) -> Any:
    """A function output as its JSON value, or the text itself when it is not JSON."""
    try:
        return json.loads(out)
    except json.JSONDecodeError:
        return out


def output_values(function_outputs: list[tuple[str, str]]) -> dict[str, Any]:
    """Template values from function outputs: `output` (the first, parsed as JSON when it is JSON) and
    `outputs[name]` (each, by tool name)."""
    values: dict[str, Any] = {"outputs": {}}
    for name, out in function_outputs:
        parsed = parse_output(out)
        values["outputs"][name] = parsed
        values.setdefault("output", parsed)
    return values


def failure(value: Any) -> str | None:
    """What went wrong, if a tool's output is an error (`{"error": "..."}`, as voiceclient's tools report one)."""
    if isinstance(value, dict) and value.get("error"):
        reason = value.get("reason")
        return speakable(value["error"]) + (f" ({speakable(reason)})" if reason else "")
    return None


def tool_report(function_outputs: list[tuple[str, str]]) -> str:
    """What a voice agent says when its answer cannot be filled from the tools' outputs: what each tool returned,
    or that it failed ("get weather failed: no such city.")."""
    said = []
    for name, out in function_outputs:
        value = parse_output(out)
        tool = name.replace("_", " ")
        problem = failure(value)
        if problem is not None:
            said.append(f"{tool} failed: {problem}")
        elif _empty(value):
            said.append(f"{tool} returned nothing")
        else:
            said.append(f"{tool} returned {speakable(value)}")
    return " ".join(s.rstrip(" .!?") + "." for s in said)
