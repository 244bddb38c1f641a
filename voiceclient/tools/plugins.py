"""Load tools from `--tools path/file.py` or `--tools package.module`: every `Tool` defined at module level."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

from ..errors import ConfigError
from .registry import Tool


def load_tools(spec: str) -> list[Tool]:
    if spec.endswith(".py") or "/" in spec or Path(spec).is_file():
        path = Path(spec)
        if not path.is_file():
            raise ConfigError(f"--tools {spec}: no such file")
        name = f"voiceclient_tools_{path.stem}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise ConfigError(f"--tools {spec}: cannot load as a Python module")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        try:
            module_spec.loader.exec_module(module)
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(f"--tools {spec}: {type(exc).__name__}: {exc}") from None
    else:
        try:
            module = importlib.import_module(spec)
        except ImportError as exc:
            raise ConfigError(f"--tools {spec}: cannot import: {exc}") from None
    tools = [v for v in vars(module).values() if isinstance(v, Tool)]
    if not tools:
        raise ConfigError(f"--tools {spec}: defines no @tool functions")
    return tools


def load_all(specs: list[str]) -> list[Tool]:
    seen: dict[str, str] = {}
    out: list[Tool] = []
    for spec in specs:
        for t in load_tools(spec):
            if t.name in seen:
                raise ConfigError(f"tool {t.name!r} is defined twice: in {seen[t.name]} and in {spec}")
            seen[t.name] = spec
            out.append(t)
    return out
