"""Shared helpers for wire objects: one-line descriptions of validation errors, deep merge, object files."""

from __future__ import annotations

import copy
import json
import re
import tomllib
from collections.abc import Collection
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from voiceclient.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def real_path(loc: tuple[Any, ...], data: Any) -> list[str]:
    """The parts of a pydantic error location that index into the input (union member tags dropped)."""
    out: list[str] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            continue
        out.append(str(part))
    return out


# pydantic's error types that mean "the wrong JSON type" (the API's `invalid_type`); any other refusal of a value
# is `invalid_value`, an unknown field `unknown_parameter`, a missing one `missing_required_parameter`.
TYPE_ERRORS = frozenset(
    {
        "dict_type",
        "model_type",
        "model_attributes_type",
        "string_type",
        "int_type",
        "int_from_float",
        "float_type",
        "bool_type",
        "list_type",
    }
)


def api_error(err: Any, data: Any, prefix: str = "") -> tuple[str, str, str]:
    """One pydantic error (`ValidationError.errors()[i]`) as the Realtime API reports it: (code, message,
    param), the param being the field's path as the client wrote it (`session.audio.input.format`), nothing of the
    validator's (no union tags, no `literal[...]` or `constrained-int`). `prefix` is prepended to the path."""
    parts = real_path(err["loc"], data)
    if err["type"] == "missing" and err["loc"]:
        parts.append(str(err["loc"][-1]))
    param = ".".join([prefix, *parts] if prefix else parts)
    if err["type"] == "extra_forbidden":
        code = "unknown_parameter"
    elif err["type"] == "missing":
        code = "missing_required_parameter"
    else:
        code = "invalid_type" if err["type"] in TYPE_ERRORS else "invalid_value"
    return code, api_message(code, param, err["msg"]), param


def api_message(code: str, param: str, detail: str) -> str:
    """The message of a refused field, in the API's words for `code` (`api_error`)."""
    if code == "unknown_parameter":
        return f"Unknown parameter: '{param}'."
    if code == "missing_required_parameter":
        return f"Missing required parameter: '{param}'."
    if code == "invalid_type":
        return f"Invalid type for '{param}': {detail}."
    return f"Invalid value for '{param}': {detail}."


def describe_error(exc: ValidationError, prefix: str = "session", data: Any = None) -> str:
    """One line: the field, the value given, and what is allowed."""
    errors = exc.errors(include_url=False)
    paths = [real_path(e["loc"], data) if data is not None else [str(p) for p in e["loc"]] for e in errors]
    depth = max(len(p) for p in paths)
    best = [(e, p) for e, p in zip(errors, paths) if len(p) == depth]
    err, path = best[0]
    where = ".".join([prefix, *path] if prefix else path)
    if err["type"] == "missing":
        return f"{where}: required field is missing"
    if err["type"] == "extra_forbidden":
        return f"{where}: unknown field"
    if err["type"] == "explained":  # a model's own whole explanation (PydanticCustomError("explained", ...))
        return f"{where}: {err['msg']}"
    given = err.get("input")
    shown = json.dumps(given, default=str)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    allowed: list[str] = []
    for e, _ in best:
        msg = re.sub(r"^(Value error, |Input should be )", "", e["msg"])
        if msg not in allowed:
            allowed.append(msg)
    return f"{where}: {shown} is not allowed; must be {' or '.join(allowed)}"


def validate(model: type[M], data: Any, prefix: str = "session") -> M:
    """`model` from `data`, or a one-line ConfigError naming the field, the value and the rule."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_error(exc, prefix, data)) from None


def deep_merge(base: dict[str, Any], top: dict[str, Any], replace: Collection[str] = ()) -> dict[str, Any]:
    """`base` with `top` merged in, object by object (a new dict; neither input changes). Keys in `replace`
    are taken whole from `top` instead of merged (a new `turn_detection` or `format` replaces the old one)."""
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key not in replace:
            out[key] = deep_merge(out[key], value, replace)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_object_file(path: str | Path, what: str) -> dict[str, Any]:
    """A JSON or TOML file holding one object (by its suffix); any problem is a one-line ConfigError."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {p}: {exc.strerror}") from None
    try:
        data: Any = tomllib.loads(text) if p.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{p}: not valid {'TOML' if p.suffix.lower() == '.toml' else 'JSON'}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected an object, not {type(data).__name__}")
    return data
