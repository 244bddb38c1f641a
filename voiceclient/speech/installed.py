"""What of offline speech is installed: where a package's files are (found through importlib, without importing
it), and the commands that install what is missing."""

from __future__ import annotations

import importlib.util
from pathlib import Path

AGENT_INSTALL = "pip install 'voiceclient[agent]'"
MOONSHINE_INSTALL = "pip install 'voiceclient[moonshine]'"
ESPEAK_INSTALL = "sudo apt-get install espeak-ng"


def package_dir(name: str) -> Path | None:
    """The directory of the installed package `name`, or None when it is not installed."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None
