"""What a line typed in `talk` is: a message for the model, or one of the commands this session has.

    hello there       a message, sent to the model
    /s                a command (here: the status)
    /x                unknown: one line says so and lists the commands; nothing is sent
    //etc/hosts       a message that starts with `/` (the first `/` is dropped: "/etc/hosts")

The commands depend on the session: `/t` (push-to-talk) only with `--push-to-talk`, `/m` (mute) only without it
(with push-to-talk the microphone is on only between `/t` and `/t`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    """One command: its names, what follows it (`args`, for the help), and what it does, in a few words."""

    name: str  # the long name, "/interrupt"
    short: str  # "/i"
    does: str  # "interrupt the answer"
    args: str = ""  # " [IN OUT]": what may follow it (none: the command takes nothing)

    @property
    def names(self) -> tuple[str, str]:
        return (self.short, self.name)


INTERRUPT = Command("/interrupt", "/i", "interrupt the answer")
MUTE = Command("/mute", "/m", "mute or unmute the microphone")
TALK = Command("/talk", "/t", "start your turn, /t again to send it")
DEVICES = Command("/devices", "/d", "list the devices (/d IN OUT, /d in N, /d out N: move to others)", " [...]")
STATUS = Command("/status", "/s", "the microphone, speaker and connection, explained")
HELP = Command("/help", "/h", "this list")
QUIT = Command("/quit", "/q", "hang up and quit")
ALL = (INTERRUPT, MUTE, TALK, DEVICES, STATUS, HELP, QUIT)


def session_commands(push_to_talk: bool) -> tuple[Command, ...]:
    """The commands that do something in this session."""
    return tuple(c for c in ALL if c is not (MUTE if push_to_talk else TALK))


@dataclass(frozen=True)
class Message:
    """Text for the model."""

    text: str


@dataclass(frozen=True)
class Run:
    """A command of this session, with the words that followed it."""

    command: Command
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Unknown:
    """A line that looks like a command and is none of this session's: `why` is the line to show."""

    why: str


Typed = Message | Run | Unknown


def parse(line: str, commands: Sequence[Command]) -> Typed | None:
    """`line` as typed (None for a blank one)."""
    text = line.strip()
    if not text:
        return None
    if text.startswith("//"):
        return Message(text[1:])
    if text == "?":
        text = HELP.short
    if not text.startswith("/"):
        return Message(text)
    word, *args = text.split()
    for command in commands:
        if word in command.names:
            if args and not command.args:
                return Unknown(f"{command.short} takes nothing after it. {help_line(commands)}")
            return Run(command, tuple(args))
    if word in MUTE.names and MUTE not in commands:
        why = "/m: with --push-to-talk the microphone is on only between /t and /t."
    elif word in TALK.names and TALK not in commands:
        why = "/t is push-to-talk: start talk with --push-to-talk (now the server hears when you stop speaking)."
    else:
        why = f"{word} is not a command (nothing was sent; //text sends text that starts with /)."
    return Unknown(f"{why} {help_line(commands)}")


def help_line(commands: Sequence[Command]) -> str:
    """`commands: type a message and Enter to send it | /i interrupt the answer | ...`."""
    return "commands: type a message and Enter to send it | " + " | ".join(f"{c.short} {c.does}" for c in commands)


def footer(commands: Sequence[Command]) -> str:
    """The panel's reminder: `/i interrupt | /m mute | ... | /q quit`."""
    return " | ".join(f"{c.short} {c.name[1:]}" for c in commands)
