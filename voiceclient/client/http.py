"""The HTTP client of the create-call requests: httpx, made cheap to start.

Two costs of a process's first call are httpx's, not the call's (docs/benchmarks.md, "Start-up time"):

- `import httpx` imports its command line (`httpx._main`: rich, click and pygments, about 40 ms) whenever those
  are installed; a client never runs it, so it is left out while httpx is imported (and importable afterwards);
- each `httpx.AsyncClient()` loads certifi's CA bundle into a new SSL context (30-40 ms). A plain-HTTP base URL
  (`voiceclient serve`, a relay on the same host) verifies no certificate, so its client loads none; an https://
  one loads the bundle once per process, shared by every call's client.
"""

from __future__ import annotations

import os
import ssl
import sys
import threading
from urllib.parse import urlsplit

_LEAVE_OUT = "httpx._main"
_left_out = "httpx" not in sys.modules and _LEAVE_OUT not in sys.modules
if _left_out:
    sys.modules[_LEAVE_OUT] = None  # type: ignore[assignment]  # `from ._main import main` fails: httpx's stub
try:
    import httpx as httpx  # re-exported: `from voiceclient.client.http import httpx`
finally:
    if _left_out and _LEAVE_OUT in sys.modules and sys.modules[_LEAVE_OUT] is None:
        del sys.modules[_LEAVE_OUT]

_lock = threading.Lock()
_context: ssl.SSLContext | None = None


def tls_context() -> ssl.SSLContext:
    """The process's one verifying SSL context, as httpx makes it (certifi, or `SSL_CERT_FILE`/`SSL_CERT_DIR`)."""
    global _context
    with _lock:
        if _context is None:
            _context = httpx.create_ssl_context()
        return _context


def _proxied(url: str) -> bool:
    """Whether the environment sends requests to `url` through a proxy (which may itself be https://)."""
    scheme = urlsplit(url).scheme
    names = {f"{scheme}_proxy", "all_proxy"}
    return any(value and name.lower() in names for name, value in os.environ.items())


def client_for(base_url: str, timeout: float) -> httpx.AsyncClient:
    """An httpx client for requests under `base_url`: certificates verified for https:// (and through a proxy),
    none loaded for a plain-HTTP URL, which has none to verify (redirects are not followed)."""
    plain = urlsplit(base_url).scheme == "http" and not _proxied(base_url)
    return httpx.AsyncClient(timeout=timeout, verify=False if plain else tls_context())
