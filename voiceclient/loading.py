"""User code named on the command line (`--tools`, `--agent`): a module by import path, or a Python file."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from voiceclient.errors import ConfigError


def is_file_spec(where: str) -> bool:
    """Whether `where` names a file (`path/file.py`, anything with a slash, or a file that exists) rather than a
    module."""
    return where.endswith(".py") or "/" in where or Path(where).is_file()


def import_user_module(where: str, label: str, prefix: str) -> ModuleType:
    """Import `where` (`package.module` or `path/file.py`; a file becomes the module `{prefix}{stem}`).

    Every failure is a `ConfigError` that starts with `label` (the option as the user wrote it), in one line: a
    missing file, a module that cannot be found, or the exception the module's own code raised while importing.
    """
    try:
        if not is_file_spec(where):
            return importlib.import_module(where)
        path = Path(where)
        if not path.is_file():
            raise ConfigError(f"{label}: no such file {where}")
        name = f"{prefix}{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ConfigError(f"{label}: cannot load {where} as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        return module
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"{label}: cannot import {where}: {type(exc).__name__}: {exc}") from None
