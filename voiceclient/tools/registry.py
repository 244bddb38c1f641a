"""`@tool`: a plain or async function becomes a function tool the model can call.

    @tool
    def get_weather(city: Annotated[str, "The city"], unit: Literal["c", "f"] = "c") -> dict: ...

    @tool(name="lookup", timeout=5, needs_approval=True, cancel_on_interrupt=True)
    async def lookup(ctx: ToolContext, query: str) -> str: ...

name = the function's name, description = its docstring (up to an `Args:` section), parameters = JSON Schema
from the type hints through pydantic (nested models, enums, `Literal`, defaults, optional arguments), each
argument described by `Annotated[..., "text"]`, `Annotated[..., Field(description=...)]` or the docstring's
`Args:` / `:param x:` entries. The schema is built and checked once, when the function is decorated. An optional
first parameter typed `ToolContext` is not part of the schema: it gives the call id, the arguments as received, a
logger and a handle to the live call. Arguments are validated against the same model before the function runs.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, overload

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic.fields import FieldInfo

from voiceclient.errors import ToolDefinitionError
from voiceclient.protocol.session import FunctionTool
from voiceclient.tasks import in_daemon_thread

DEFAULT_TIMEOUT = 30.0


class CallHandle(Protocol):
    """What a tool may do to the live call."""

    def send_text(self, text: str) -> None: ...
    def update_session(self, session: Any) -> None: ...
    def hangup(self) -> None: ...


@dataclass
class ToolContext:
    """Passed to a tool whose first parameter is typed `ToolContext`."""

    call_id: str  # the function call's `call_id`
    name: str
    arguments: str  # the JSON text exactly as the model sent it
    logger: logging.Logger
    call: CallHandle | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _strip_titles(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _strip_titles(v) for k, v in schema.items() if not (k == "title" and isinstance(v, str))}
    if isinstance(schema, list):
        return [_strip_titles(v) for v in schema]
    return schema


_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters|Returns|Raises|Yields|Examples?)\s*:\s*$")


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The summary (text before any `Args:`-like section) and per-argument descriptions, from Google style
    (`Args:` then `name: text` or `name (type): text`) or Sphinx style (`:param name: text`)."""
    lines = inspect.cleandoc(doc or "").splitlines()
    summary: list[str] = []
    params: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    for line in lines:
        sphinx = re.match(r"^\s*:param\s+(?:\w+\s+)?(\w+)\s*:\s*(.*)$", line)
        if sphinx:
            current = sphinx.group(1)
            params[current] = sphinx.group(2).strip()
            section = "sphinx"
            continue
        head = _SECTION.match(line)
        if head:
            section = head.group(1).lower()
            current = None
            continue
        if section in ("args", "arguments", "parameters"):
            entry = re.match(r"^\s{0,8}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$", line)
            if entry and (line.startswith(" ") or not line.strip().endswith(":")):
                current = entry.group(1)
                params[current] = entry.group(2).strip()
            elif current and line.strip():
                params[current] += " " + line.strip()
        elif section == "sphinx":
            if current and line.strip() and not line.strip().startswith(":"):
                params[current] += " " + line.strip()
        elif section is None:
            summary.append(line)
    return "\n".join(summary).strip(), params


class Tool:
    """A Python function the model may call: its JSON Schema from the signature and docstring (`definition`), how long
    it may run (`timeout`), whether the user approves each call (`needs_approval`), and whether an interrupted
    response cancels it (`cancel_on_interrupt`). Made by `@tool`.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        name: str | None = None,
        description: str | None = None,
        *,
        timeout: float | None = None,
        needs_approval: bool = False,
        cancel_on_interrupt: bool = False,
        spoken: bool = True,
    ) -> None:
        self.fn = fn
        self.name: str = name or str(getattr(fn, "__name__", ""))
        summary, self.arg_docs = parse_docstring(fn.__doc__ or "")
        self.description = description if description is not None else summary
        self.is_async = inspect.iscoroutinefunction(fn)
        if timeout is not None and timeout <= 0:
            raise ToolDefinitionError(f"tool {self.name}: timeout must be greater than 0, not {timeout}")
        self.timeout = timeout
        self.needs_approval = needs_approval
        self.cancel_on_interrupt = cancel_on_interrupt
        # GPT-Live, answering a task delegated to the application: the result is said (commentary), or silent
        # context for the model (thinking)
        self.spoken = spoken
        self.source = getattr(fn, "__module__", None) or "?"
        self.wants_context = False
        self.model = self._arguments_model()
        try:
            schema = _strip_titles(self.model.model_json_schema())
        except Exception as exc:
            raise ToolDefinitionError(f"tool {self.name}: no JSON Schema for its arguments: {exc}") from None
        schema.setdefault("properties", {})
        schema["additionalProperties"] = False
        self.parameters = schema
        try:
            self.definition = FunctionTool(
                name=self.name, description=self.description or None, parameters=self.parameters
            )
        except ValidationError:
            raise ToolDefinitionError(f"tool name {self.name!r}: use 1-64 letters, digits, _ or -") from None
        functools.update_wrapper(self, fn)

    def _arguments_model(self) -> type[BaseModel]:
        try:
            hints = typing.get_type_hints(self.fn, include_extras=True)
        except Exception as exc:
            raise ToolDefinitionError(f"tool {self.name}: cannot read type hints: {exc}") from None
        try:
            params = list(inspect.signature(self.fn).parameters.values())
        except (TypeError, ValueError) as exc:
            raise ToolDefinitionError(f"tool {self.name}: no signature: {exc}") from None
        if params and hints.get(params[0].name) is ToolContext:
            self.wants_context = True
            params = params[1:]
        fields: dict[str, Any] = {}
        for param in params:
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
                raise ToolDefinitionError(f"tool {self.name}: parameter {param.name!r} must be a named argument")
            annotation = hints.get(param.name, Any)
            if annotation is ToolContext:
                raise ToolDefinitionError(f"tool {self.name}: ToolContext must be the first parameter")
            annotation, described = self._described(annotation)
            default: Any = ... if param.default is inspect.Parameter.empty else param.default
            doc = described or self.arg_docs.get(param.name)
            if isinstance(default, FieldInfo):
                fields[param.name] = (annotation, default)
            else:
                fields[param.name] = (annotation, Field(default, description=doc) if doc else default)
        try:
            return create_model(f"{self.name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)
        except Exception as exc:
            raise ToolDefinitionError(f"tool {self.name}: cannot build a schema: {exc}") from None

    @staticmethod
    def _described(annotation: Any) -> tuple[Any, str | None]:
        """`Annotated[T, "text", ...]` -> (Annotated[T, ...the rest], "text")."""
        if typing.get_origin(annotation) is not typing.Annotated:
            return annotation, None
        base, *meta = typing.get_args(annotation)
        texts = [m for m in meta if isinstance(m, str)]
        rest = [m for m in meta if not isinstance(m, str)]
        return (typing.Annotated[(base, *rest)] if rest else base), (texts[0] if texts else None)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def parse_arguments(self, arguments: str) -> dict[str, Any]:
        """Validate the model's JSON text; raises json.JSONDecodeError or pydantic.ValidationError."""
        data = json.loads(arguments or "{}")
        parsed = self.model.model_validate(data)
        return {name: getattr(parsed, name) for name in type(parsed).model_fields}

    async def invoke(self, arguments: str, context: ToolContext | None = None) -> Any:
        """Validate the arguments and run the function (sync ones in a daemon thread of their own, abandoned if the
        caller stops waiting; async ones on the loop)."""
        kwargs = self.parse_arguments(arguments)
        args: tuple[Any, ...] = ()
        if self.wants_context:
            args = (
                context
                or ToolContext(
                    call_id="",
                    name=self.name,
                    arguments=arguments,
                    logger=logging.getLogger(f"voiceclient.tools.{self.name}"),
                ),
            )
        if self.is_async:
            return await self.fn(*args, **kwargs)
        # Not asyncio.to_thread: a tool that never returns would hold interpreter shutdown forever.
        return await in_daemon_thread(self.fn, *args, name=f"tool {self.name}", **kwargs)

    def __repr__(self) -> str:
        return f"<Tool {self.name}>"


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...
@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    needs_approval: bool = False,
    cancel_on_interrupt: bool = False,
    spoken: bool = True,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    needs_approval: bool = False,
    cancel_on_interrupt: bool = False,
    spoken: bool = True,
) -> Any:
    """Declare a function tool: `@tool`, or `@tool(name=, description=, timeout=, needs_approval=,
    cancel_on_interrupt=, spoken=)`."""
    if fn is not None:
        return Tool(fn)
    return lambda f: Tool(
        f,
        name=name,
        description=description,
        timeout=timeout,
        needs_approval=needs_approval,
        cancel_on_interrupt=cancel_on_interrupt,
        spoken=spoken,
    )
