"""How a command ends on Ctrl-C (`voiceclient.app.stopping`), in a process of its own: the signal is noted before
the command's task is cancelled, so a cancellation swallowed inside the command does not lose it, and a second
Ctrl-C ends a command that does not stop."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from .conftest import ctrl_c_as_in_a_terminal

pytestmark = [pytest.mark.subprocess, pytest.mark.timeout(60)]

COMMAND = """
import asyncio, sys
from voiceclient.app.stopping import Stopped, run_command

async def command() -> int:
    print("ready", flush=True)
    for _ in range({swallows}):
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:  # swallowed, as 3.11's asyncio.wait_for can when its future completes then
            print("went on", flush=True)
    return 0

try:
    sys.exit(run_command(command(), grace=20))
except Stopped as exc:
    print("stopped", exc.signum, flush=True)
    sys.exit(128 + exc.signum)
"""


def interrupt(swallows: int, times: int) -> tuple[int, list[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", COMMAND.format(swallows=swallows)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ctrl_c_as_in_a_terminal,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGINT)
        if times > 1:  # the second once the first has been taken
            assert proc.stdout.readline() == "went on\n"
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    return proc.returncode, ["ready", *(["went on"] if times > 1 else []), *out.splitlines()], err


def test_a_ctrl_c_whose_cancellation_the_command_swallows_still_stops_it() -> None:
    code, lines, err = interrupt(swallows=1, times=1)
    assert (code, lines) == (130, ["ready", "went on", "stopped 2"]), err


def test_a_second_ctrl_c_ends_a_command_that_does_not_stop() -> None:
    code, lines, err = interrupt(swallows=3, times=2)
    assert code == 130 and lines == ["ready", "went on"], (lines, err)
    assert err.strip() == "voiceclient: SIGINT again; exiting without waiting"
