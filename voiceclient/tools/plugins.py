"""Where tools come from, and which of them the model may see.

- `--tools path/file.py` or `--tools package.module`: every `Tool` defined at module level (or the module's
  `TOOLS` list). Naming them on the command line enables them.
- Installed plugins: entry points in the group `voiceclient.tools`; each points at a module, a list of tools or
  one tool. Nothing from an installed plugin is exposed to the model unless the config's `[tools]` section enables
  that plugin (`plugins = ["name"]`, or `["*"]` for all).
- `[tools] enable = [...]` keeps only the named tools; `disable = [...]` drops some. A tool name defined twice among
  what is enabled is an error naming both sources.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from voiceclient.errors import ConfigError
from voiceclient.loading import import_user_module
from voiceclient.protocol.validation import validate
from voiceclient.tools.registry import DEFAULT_TIMEOUT, Tool

ENTRY_POINT_GROUP = "voiceclient.tools"


class ToolsConfig(BaseModel):
    """The `[tools]` section of a config file."""

    model_config = ConfigDict(extra="forbid")
    plugins: list[str] = Field(default_factory=list)
    enable: list[str] | None = None
    disable: list[str] = Field(default_factory=list)
    timeout: float = Field(default=DEFAULT_TIMEOUT, gt=0)
    approve: Literal["always", "never"] = "never"


@dataclass
class ToolSource:
    name: str  # entry-point name, or the --tools spec
    origin: str  # where it came from, for messages and `voiceclient tools`
    installed: bool  # an entry point (enabled only through the config)
    tools: list[Tool] = field(default_factory=list)
    error: str | None = None
    enabled: bool = False


def tools_in(obj: Any, where: str) -> list[Tool]:
    """The tools a plugin object offers: a module (its `TOOLS`, else every module-level Tool), a list, or a Tool."""
    if isinstance(obj, Tool):
        return [obj]
    if isinstance(obj, ModuleType):
        listed = getattr(obj, "TOOLS", None)
        found = list(listed) if listed is not None else [v for v in vars(obj).values() if isinstance(v, Tool)]
    elif isinstance(obj, (list, tuple)):
        found = list(obj)
    else:
        raise ConfigError(f"{where}: expected a module, a list of tools or a tool, not {type(obj).__name__}")
    bad = [repr(t) for t in found if not isinstance(t, Tool)]
    if bad:
        raise ConfigError(f"{where}: not @tool functions: {', '.join(bad[:3])}")
    if not found:
        raise ConfigError(f"{where}: defines no @tool functions")
    return found


def load_tools(spec: str) -> list[Tool]:
    """Tools from `path/file.py` or `package.module`."""
    module = import_user_module(spec, f"--tools {spec}", "voiceclient_tools_")
    return tools_in(module, f"--tools {spec}")


def discover_installed() -> list[ToolSource]:
    """Installed plugins (entry points of the group `voiceclient.tools`); a broken one is reported, not fatal."""
    sources = []
    for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = f" ({ep.dist.name} {ep.dist.version})" if ep.dist is not None else ""
        source = ToolSource(ep.name, f"{ep.value}{dist}", installed=True)
        try:
            source.tools = tools_in(ep.load(), f"plugin {ep.name}")
        except ConfigError as exc:
            source.error = str(exc)
        except Exception as exc:
            source.error = f"plugin {ep.name}: cannot load {ep.value}: {type(exc).__name__}: {exc}"
        sources.append(source)
    return sources


def load_all(specs: list[str]) -> list[Tool]:
    """Tools from `--tools` specs alone (no installed plugins), with duplicate names refused."""
    return select(ToolsConfig(), specs, installed=[])[0]


def select(
    config: ToolsConfig, specs: list[str], installed: list[ToolSource] | None = None
) -> tuple[list[Tool], list[ToolSource]]:
    """The enabled tools (what the model will see) and every source with what it offered."""
    sources = [ToolSource(spec, spec, installed=False, tools=load_tools(spec), enabled=True) for spec in specs]
    plugins = discover_installed() if installed is None else installed
    names = {p.name for p in plugins}
    unknown = [p for p in config.plugins if p != "*" and p not in names]
    if unknown:
        raise ConfigError(
            f"[tools] plugins: {', '.join(unknown)} not installed (installed: {', '.join(sorted(names)) or 'none'})"
        )
    for plugin in plugins:
        plugin.enabled = "*" in config.plugins or plugin.name in config.plugins
        if plugin.enabled and plugin.error:
            raise ConfigError(plugin.error)
    sources.extend(plugins)
    offered = {t.name for s in sources if s.enabled for t in s.tools}
    for key, listed in (("enable", config.enable or []), ("disable", config.disable)):
        missing = [n for n in listed if n not in offered]
        if missing:
            raise ConfigError(
                f"[tools] {key}: no enabled source offers {', '.join(missing)} "
                f"(offered: {', '.join(sorted(offered)) or 'none'})"
            )
    chosen: list[Tool] = []
    seen: dict[str, str] = {}
    for source in sources:
        if not source.enabled:
            continue
        for t in source.tools:
            if (config.enable is not None and t.name not in config.enable) or t.name in config.disable:
                continue
            where = f"plugin {source.name}" if source.installed else source.name
            if t.name in seen:
                raise ConfigError(f"tool {t.name!r} is defined twice: in {seen[t.name]} and in {where}")
            seen[t.name] = where
            chosen.append(t)
    return chosen, sources


def tools_config(data: dict[str, Any] | None) -> ToolsConfig:
    return validate(ToolsConfig, data or {}, prefix="tools")
