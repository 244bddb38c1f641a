"""`talk`'s screen, the parts a function decides: the line being edited (keys in, lines out), what a line is (a
message, one of this session's commands, or an unknown command, which is never sent), and what `/s` says."""

from __future__ import annotations

import pytest

from voiceclient.app import talk_commands as tc
from voiceclient.app.talk_status import Health, explain
from voiceclient.app.terminal import EOF, LineEditor

pytestmark = pytest.mark.timeout(10)


def test_keys_make_lines_as_a_terminal_would() -> None:
    editor = LineEditor()
    assert editor.feed(b"hello") == [] and editor.text == "hello"
    assert editor.feed(b"\x7fp\r") == ["hellp"] and editor.text == ""  # Backspace, then Enter
    assert editor.feed(b"one\ntwo\n") == ["one", "two"]  # a pasted block: a line each
    assert editor.feed(b"half a line\x15x\r") == ["x"]  # Ctrl-U erased the line
    assert editor.feed(b"send this  now\x17later\r") == ["send this  later"]  # Ctrl-W: the last word
    assert editor.feed(b"caf\xc3") == [] and editor.feed(b"\xa9\r") == ["caf\u00e9"]  # UTF-8 split over reads


def test_escape_sequences_and_control_keys_are_not_typed() -> None:
    editor = LineEditor()
    assert editor.feed(b"a\x1b[Ab\x1b[1;5Dc\x1bOPd\r") == ["abcd"]  # arrows, Ctrl-Left, F1
    assert editor.feed(b"x\x1b") == [] and editor.feed(b"y\r") == ["xy"]  # Escape alone, then a key
    assert editor.feed(b"\x01\x02tab\there\r") == ["tab here"]


def test_ctrl_d_ends_the_input_only_on_an_empty_line() -> None:
    editor = LineEditor()
    assert editor.feed(b"not yet\x04") == [] and editor.text == "not yet"
    assert editor.feed(b"\x15\x04") == [EOF]


@pytest.mark.parametrize(
    ("line", "push_to_talk", "typed"),
    [
        ("hello there", False, tc.Message("hello there")),
        ("  hello  ", False, tc.Message("hello")),
        ("//etc/hosts is a file", False, tc.Message("/etc/hosts is a file")),
        ("/i", False, tc.Run(tc.INTERRUPT)),
        ("/quit", False, tc.Run(tc.QUIT)),
        ("?", False, tc.Run(tc.HELP)),
        ("/d in 3", False, tc.Run(tc.DEVICES, ("in", "3"))),
        ("/t", True, tc.Run(tc.TALK)),
        ("/m", False, tc.Run(tc.MUTE)),
        ("", False, None),
        ("   ", False, None),
    ],
)
def test_a_typed_line_is_a_message_or_a_command(line: str, push_to_talk: bool, typed: tc.Typed | None) -> None:
    assert tc.parse(line, tc.session_commands(push_to_talk)) == typed


@pytest.mark.parametrize(
    ("line", "push_to_talk", "says"),
    [
        ("/x", False, "/x is not a command (nothing was sent; //text sends text that starts with /)."),
        ("/foo bar", False, "/foo is not a command (nothing was sent; //text sends text that starts with /)."),
        ("/t", False, "/t is push-to-talk: start talk with --push-to-talk"),
        ("/talk", False, "/t is push-to-talk: start talk with --push-to-talk"),
        ("/m", True, "/m: with --push-to-talk the microphone is on only between /t and /t."),
        ("/s now", False, "/s takes nothing after it."),
    ],
)
def test_an_unknown_command_is_one_line_with_the_commands(line: str, push_to_talk: bool, says: str) -> None:
    commands = tc.session_commands(push_to_talk)
    typed = tc.parse(line, commands)
    assert isinstance(typed, tc.Unknown)
    assert typed.why.startswith(says) and typed.why.endswith(tc.help_line(commands)) and "\n" not in typed.why


def test_the_help_lists_what_this_session_has() -> None:
    listed = tc.help_line(tc.session_commands(push_to_talk=False))
    assert listed.startswith("commands: type a message and Enter to send it | /i interrupt the answer | /m ")
    assert "/t " not in listed and "/d " in listed and "/s " in listed and listed.endswith("/q hang up and quit")
    with_ptt = tc.help_line(tc.session_commands(push_to_talk=True))
    assert "/t start your turn, /t again to send it" in with_ptt and "/m " not in with_ptt
    assert tc.footer(tc.session_commands(push_to_talk=True)) == (
        "/i interrupt | /t talk | /d devices | /s status | /h help | /q quit"
    )


HEALTHY = Health(
    mic_name="default",
    mic_dbfs=float("-inf"),
    mic_muted=False,
    mic_gaps=0,
    mic_gap_seconds=0.0,
    mic_dropped=0,
    speaker_name="Speakers",
    speaker_buffered_ms=40.0,
    speaker_gaps=0,
    speaker_trimmed_ms=0.0,
    echo_cancellation=True,
    recoveries=0,
    last_turn_ms=None,
)


def test_the_status_says_what_each_figure_means() -> None:
    assert explain(HEALTHY).splitlines() == [
        "status:",
        "  microphone 'default': silent (the last 20 ms; speech is about -40 to -10 dBFS)",
        "    gaps 0: times it went quiet for over 0.1 s after it had started (what you said then was lost)",
        "    dropped 0: 20 ms blocks of it thrown away because the call did not take them in time (it was busy, "
        "or reconnecting)",
        "  speaker 'Speakers': 40 ms waiting to be played (about 40 keeps the sound smooth; at most 120)",
        "    gaps 0: times it ran out in the middle of sound because the answer's audio came late (cuts you may have "
        "heard)",
        "    skipped 0 ms: answer audio that piled up after a hold-up, dropped to keep the delay short (a jump you "
        "may have heard)",
        "  echo cancellation on; the sound devices never stopped",
        "  last spoken turn: none spoken yet (the time from the end of your speech to the first sound of the answer)",
    ]


def test_the_status_with_trouble_in_it() -> None:
    from dataclasses import replace

    trouble = replace(
        HEALTHY,
        mic_dbfs=-31.6,
        mic_muted=True,
        mic_gaps=2,
        mic_gap_seconds=1.26,
        speaker_gaps=3,
        speaker_trimmed_ms=90.0,
        echo_cancellation=False,
        recoveries=1,
        last_turn_ms=642.4,
    )
    text = explain(trouble)
    assert "microphone 'default': level -32 dBFS (the last 20 ms; speech is about -40 to -10 dBFS), muted: " in text
    assert (
        "gaps 2: times it went quiet for over 0.1 s after it had started (what you said then was lost, 1.3 s in" in text
    )
    assert "    gaps 3: times it ran out in the middle of sound" in text and "skipped 90 ms: " in text
    assert "echo cancellation off; the sound devices stopped and were reopened once (each said so above)" in text
    assert "last spoken turn: 642 ms from the end of your speech to the first sound of the answer" in text
