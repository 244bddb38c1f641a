import inspect

import pytest

import voiceclient

pytestmark = pytest.mark.timeout(60)  # (imports every public module: 17 s once beside a loaded machine)


def test_public_api_is_pinned() -> None:
    assert voiceclient.__all__ == [
        "APIConnectionError",
        "APIError",
        "APITimeoutError",
        "ApprovalDecision",
        "ApprovalRequest",
        "AuthenticationError",
        "AutoTransport",
        "BufferSource",
        "CallAnswer",
        "CallError",
        "CallState",
        "CallsAPI",
        "ClientSettings",
        "ConfigError",
        "ConnectionLostError",
        "Continuity",
        "DeviceError",
        "EventStream",
        "InvalidAnswerError",
        "InvalidOfferError",
        "InvalidSessionError",
        "Item",
        "MalformedEvent",
        "NotFoundError",
        "RateLimitError",
        "RealtimeServer",
        "ReconnectPolicy",
        "Recording",
        "ServerError",
        "SessionConfig",
        "SessionNotConfirmedError",
        "SessionUpdateError",
        "Tool",
        "ToolContext",
        "ToolDefinitionError",
        "TranscriptionSessionConfig",
        "Transport",
        "UnknownEvent",
        "VoiceCall",
        "VoiceClientError",
        "WavSource",
        "WebRTCTransport",
        "WebSocketTransport",
        "__version__",
        "build_session",
        "build_transcription_session",
        "load_audio",
        "parse_server_event",
        "tool",
    ]
    for name in voiceclient.__all__:
        assert hasattr(voiceclient, name)

    import voiceclient.testing as testing

    for name in testing.__all__:
        assert hasattr(testing, name), name
    assert sorted(testing.__all__) == sorted(n for names in testing._WHERE.values() for n in names)


def test_error_tree() -> None:
    e = voiceclient
    assert all(
        issubclass(c, e.VoiceClientError)
        for c in (e.ConfigError, e.APIError, e.APIConnectionError, e.CallError, e.ToolDefinitionError)
    )
    assert issubclass(e.APITimeoutError, TimeoutError) and issubclass(e.ConnectionLostError, ConnectionError)
    assert issubclass(e.ConfigError, ValueError) and issubclass(e.InvalidOfferError, ValueError)
    assert e.RateLimitError.transient and e.ServerError.transient and not e.AuthenticationError.transient
    assert {c.exit_code for c in (e.ConfigError, e.AuthenticationError, e.APIConnectionError, e.ServerError)} == {
        2,
        3,
        4,
        5,
    }
    # An answer that cannot connect is a connection failure (4) that no retry mends; an unconfirmed session is a
    # call error (5), not a success with the session silently missing.
    assert e.InvalidAnswerError.exit_code == 4 and not e.InvalidAnswerError.transient
    assert e.SessionNotConfirmedError.exit_code == 5 and issubclass(e.SessionNotConfirmedError, e.CallError)


def test_sounddevice_is_not_imported_by_the_client() -> None:
    import subprocess
    import sys

    code = (
        "import sys, voiceclient, voiceclient.client.call, voiceclient.app.cli, voiceclient.server, "
        "voiceclient.testing; "
        "print('sounddevice' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"  # it fails at import without PortAudio: only device mode may import it


def test_the_package_is_typed_and_the_testing_helpers_need_no_pytest() -> None:
    import importlib.resources
    import subprocess
    import sys

    assert (importlib.resources.files("voiceclient") / "py.typed").is_file()
    code = "import sys, voiceclient, voiceclient.testing; print('pytest' in sys.modules, voiceclient.RealtimeServer)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("False <class 'voiceclient.server.app.RealtimeServer'>")


PACKAGES = [
    "voiceclient",
    "voiceclient.testing",
    "voiceclient.tools",
    "voiceclient.server",
    "voiceclient.report",
    "voiceclient.audio",
    "voiceclient.client",
    "voiceclient.agents",
]


def exported() -> dict[str, object]:
    """Every name in a package's `__all__`, as `package.Name` (an object re-exported twice, once)."""
    import importlib

    found: dict[int, tuple[str, object]] = {}
    for package in PACKAGES:
        module = importlib.import_module(package)
        for name in getattr(module, "__all__", []):
            value = getattr(module, name)
            if inspect.isclass(value) or inspect.isfunction(value):
                found.setdefault(id(value), (f"{package}.{name}", value))
    return dict(found.values())


def test_every_exported_name_and_its_public_members_are_documented() -> None:
    """What the API reference shows: each exported class and function has its own docstring, and so has each
    public method and property of an exported class (an override documented by the method it overrides)."""
    missing = []
    for where, value in exported().items():
        doc = (vars(value).get("__doc__") if inspect.isclass(value) else value.__doc__) or ""
        if not doc.strip() or doc.startswith(f"{getattr(value, '__name__', '')}("):  # (a dataclass signature)
            missing.append(where)
        if not inspect.isclass(value):
            continue
        for name, member in vars(value).items():
            if name.startswith("_") or not (
                callable(member) or isinstance(member, (property, classmethod, staticmethod))
            ):
                continue
            if inspect.isclass(member):
                continue
            if not (inspect.getdoc(getattr(value, name)) or "").strip():
                missing.append(f"{where}.{name}")
    assert not missing, f"{len(missing)} exported names without a docstring: {', '.join(missing)}"
