"""The timeline as one self-contained HTML page: styles, script and data inline, a Content-Security-Policy that
lets nothing load from anywhere, readable in any browser offline. `--png`: the same page photographed by headless
Chromium, where it is installed."""

from __future__ import annotations

import functools
import html
import json
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

from voiceclient.errors import ConfigError
from voiceclient.report.timeline import Timeline

CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:"


@functools.cache
def page_template(package: str, name: str) -> str:
    """An HTML page shipped in `package`, with the palette and base rules all voiceclient pages share inlined."""
    base = resources.files("voiceclient.report").joinpath("base.css").read_text(encoding="utf-8")
    return resources.files(package).joinpath(name).read_text(encoding="utf-8").replace("%BASE_CSS%", base)


def template() -> str:
    return page_template("voiceclient.report", "template.html")


def render(timeline: Timeline, title: str) -> str:
    """The timeline page of `timeline` as one self-contained HTML document (no network, its data inlined)."""
    data = json.dumps(timeline.to_json(), separators=(",", ":"), default=str).replace("</", "<\\/")
    s = timeline.summary
    latency = (
        "-"
        if s["latency_median_ms"] is None
        else f"{s['latency_median_ms']} ms median, {s['latency_worst_ms']} ms worst ({s['latency_measured']})"
    )
    usage = s["usage"]
    facts = [
        ("call", ", ".join(s["call_ids"]) or "-"),
        ("duration", f"{s['duration']:.1f} s"),
        ("turns", str(s["turns"])),
        ("responses", str(s["responses"])),
        ("turn latency", latency),
        (
            "tool calls",
            ", ".join(
                f"{name} \u00d7{s['tools'].count(name)}" if s["tools"].count(name) > 1 else name
                for name in dict.fromkeys(s["tools"])
            )
            or "none",
        ),
        ("errors", str(s["errors"])),
        ("connection switches", str(s["switches"])),
        (
            "tokens",
            f"{usage.get('total_tokens', 0)} ({usage.get('input_tokens', 0)} in / {usage.get('output_tokens', 0)} out)"
            if usage
            else "-",
        ),
        ("events", str(s["events"])),
    ]
    summary = "".join(
        f'<div class="fact"><span>{html.escape(k)}</span><b id="fact-{k.replace(" ", "-")}">{html.escape(v)}</b></div>'
        for k, v in facts
    )
    rows = "".join(
        f"<tr><td>{t.index}</td><td>{t.speech_end:.2f} s</td>"
        f"<td>{'-' if t.first_audio is None else f'{t.first_audio:.2f} s'}</td>"
        f'<td class="ms">{"-" if t.latency_ms is None else f"{t.latency_ms:.0f} ms"}</td>'
        f"<td>{html.escape(t.user_text)}</td><td>{html.escape(t.answer_text)}</td></tr>"
        for t in timeline.turns
    )
    return (
        template()
        .replace("%CSP%", CSP)
        .replace("%TITLE%", html.escape(title))
        .replace("%SUMMARY%", summary)
        .replace("%ROWS%", rows or '<tr><td colspan="6">no user turns</td></tr>')
        .replace("%DATA%", data)
    )


def write_report(events: str | Path, recording: str | Path | None, out: str | Path) -> Timeline:
    """Read a call's event log (and stereo recording), write its timeline page to `out`, return the timeline."""
    timeline = Timeline.read(events, recording)
    Path(out).write_text(render(timeline, Path(events).name), encoding="utf-8")
    return timeline


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def screenshot(page: str | Path, png: str | Path, width: int = 1600, height: int = 1000) -> None:
    """The page as a PNG, by headless Chromium."""
    browser = chromium()
    if browser is None:
        raise ConfigError("--png needs Chromium (apt-get install chromium); the HTML report needs nothing")
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [
                browser,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--hide-scrollbars",
                f"--window-size={width},{height}",
                f"--screenshot={Path(png).resolve()}",
                Path(page).resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    if done.returncode != 0 or not Path(png).is_file():
        raise ConfigError(f"--png: Chromium could not photograph the report: {done.stderr.strip()[-300:]}")
