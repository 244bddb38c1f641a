"""See a call: its timeline as one self-contained HTML page, from the files the call wrote (`voiceclient report`).

from voiceclient.report import write_report
write_report("events.jsonl", "conversation.wav", "report.html")
"""

from __future__ import annotations

from voiceclient.report.page import render, screenshot, write_report
from voiceclient.report.timeline import Timeline

__all__ = ["Timeline", "render", "screenshot", "write_report"]
