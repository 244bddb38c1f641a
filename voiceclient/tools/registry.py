"""`@tool`: a plain or async function becomes a function tool the model can call.

name = the function's name, description = its docstring, parameters = JSON Schema from the type hints (through
pydantic, so nested models, enums, `Literal` and defaults work), required = the arguments without defaults.
Arguments are validated against the same model before the function runs.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
from typing import Any, overload
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from ..config import FunctionTool
from ..errors import ToolDefinitionError


def _strip_titles(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _strip_titles(v) for k, v in schema.items() if k != "title"}
    if isinstance(schema, list):
        return [_strip_titles(v) for v in schema]
    return schema


class Tool:
    def __init__(self, fn: Callable[..., Any], name: str | None = None, description: str | None = None) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.description = description if description is not None else inspect.cleandoc(fn.__doc__ or "")
        self.is_async = inspect.iscoroutinefunction(fn)
        self.model = self._arguments_model()
        schema = _strip_titles(self.model.model_json_schema())
        schema.setdefault("properties", {})
        schema["additionalProperties"] = False
        self.parameters = schema
        try:
            self.definition = FunctionTool(name=self.name, description=self.description or None,
                                           parameters=self.parameters)
        except ValidationError:
            raise ToolDefinitionError(f"tool name {self.name!r}: use 1-64 letters, digits, _ or -") from None
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]

    def _arguments_model(self) -> type[BaseModel]:
        fields: dict[str, Any] = {}
        try:
            hints = inspect.get_annotations(self.fn, eval_str=True)
        except Exception as exc:
            raise ToolDefinitionError(f"tool {self.name}: cannot read type hints: {exc}") from None
        for param in inspect.signature(self.fn).parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
                raise ToolDefinitionError(f"tool {self.name}: parameter {param.name!r} must be a named argument")
            annotation = hints.get(param.name, Any)
            default = ... if param.default is inspect.Parameter.empty else param.default
            fields[param.name] = (annotation, default)
        try:
            return create_model(f"{self.name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)
        except Exception as exc:
            raise ToolDefinitionError(f"tool {self.name}: cannot build a schema: {exc}") from None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    async def invoke(self, arguments: str) -> Any:
        """Validate the model's JSON arguments and run the function (sync ones in a worker thread)."""
        data = json.loads(arguments or "{}")
        parsed = self.model.model_validate(data)
        kwargs = {name: getattr(parsed, name) for name in type(parsed).model_fields}
        if self.is_async:
            return await self.fn(**kwargs)
        return await asyncio.to_thread(self.fn, **kwargs)

    def __repr__(self) -> str:
        return f"<Tool {self.name}>"


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...
@overload
def tool(*, name: str | None = None, description: str | None = None) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(fn: Callable[..., Any] | None = None, /, *, name: str | None = None,
         description: str | None = None) -> Any:
    """Declare a function tool: `@tool` or `@tool(name=..., description=...)`."""
    if fn is not None:
        return Tool(fn)
    return lambda f: Tool(f, name=name, description=description)
