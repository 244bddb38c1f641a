"""The docs cannot rot: every Python example in README.md and docs/ runs, and every command shown names only
options the command has.

- A block that is a program (`asyncio.run(...)`) runs in a fresh directory holding `question.wav` (the demo's
  spoken question), against a `voiceclient serve` process (`OPENAI_BASE_URL`, `OPENAI_API_KEY`) with the demo's
  scenario, or with what a `<!-- docs-test: serve ARGS -->` line just above the block asks for.
- A block with `async def test_` is a test file: pytest runs it (the plugin's fixtures, strict asyncio mode).
- Any other Python block is a fragment of a larger program (it names what the page around it defines): it is
  compiled (top-level `await` allowed), not run.
- Each `voiceclient SUBCOMMAND ... --flag` line in a plain block (with the lines it continues onto with `\\` or
  an indent): every flag is in `voiceclient SUBCOMMAND --help`.
- A plain block under `<!-- docs-test: run -->` runs as a reader would type it, in a fresh directory holding
  `question.wav` and every block of its page under `<!-- docs-test: file NAME -->` (a file the page asks the
  reader to save as NAME).
- No line of a code block is wider than the site's code column, except `text` blocks (program output), which the
  site wraps.
"""

from __future__ import annotations

import ast
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
ASSETS = ROOT / "voiceclient" / "assets"
BLOCK = re.compile(r"(?:<!-- docs-test: (?P<directive>[^>]*?) -->\n)?```(?P<lang>\w*)[^\n]*\n(?P<body>.*?)```", re.S)

pytestmark = [pytest.mark.timeout(180), pytest.mark.subprocess]


def all_blocks() -> list[tuple[str, str, str, str]]:
    """(where, lang, directive, body) of every fenced block in the pages."""
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for m in BLOCK.finditer(text):
            line = text[: m.start()].count("\n") + 1
            found.append((f"{page.relative_to(ROOT)}:{line}", m["lang"], m["directive"] or "", m["body"]))
    return found


def blocks(lang: str) -> list[tuple[str, str, str]]:
    """(where, directive, body) of every fenced block of `lang` in the pages."""
    return [(where, directive, body) for where, of_lang, directive, body in all_blocks() if of_lang == lang]


def page_files(where: str) -> dict[str, str]:
    """The files a page asks the reader to save: NAME -> body of each block under `<!-- docs-test: file NAME -->`."""
    page = where.split(":")[0]
    return {
        directive.split()[1]: body
        for at, _, directive, body in all_blocks()
        if at.split(":")[0] == page and directive.startswith("file ")
    }


def write_page_files(where: str, directory: Path) -> None:
    for name, body in page_files(where).items():
        (directory / name).write_text(body, encoding="utf-8")


def skip_unless_installed(body: str) -> None:
    """What a block needs beyond the base install, as the reader would need it."""
    if re.search(r"voiceclient (call|talk) .*--agent|from agents", body.replace("\\\n", " ")):
        pytest.importorskip("agents", reason="the agents extra (OpenAI's Agents SDK)")
    if re.search(r"voiceclient serve .*--agent|espeak-ng", body):
        pytest.importorskip("faster_whisper", reason="the agent extra")
        if shutil.which("espeak-ng") is None:
            pytest.skip("espeak-ng is not installed")


def kind(body: str) -> str:
    if "asyncio.run(" in body:
        return "program"
    if re.search(r"^async def test_|^def test_", body, re.M):
        return "test"
    return "fragment"


PYTHON = blocks("python")


def cases(found: list[tuple[str, str, str]], of_kind: str | None = None) -> list[Any]:
    """The blocks (of one kind) as parameters, each named by where it is."""
    return [pytest.param(*b, id=b[0]) for b in found if of_kind is None or kind(b[2]) == of_kind]


def test_the_pages_hold_examples() -> None:
    kinds = [kind(body) for _, _, body in PYTHON]
    assert kinds.count("program") >= 2 and kinds.count("test") >= 2, kinds


@pytest.mark.parametrize(("where", "directive", "body"), cases(PYTHON, "fragment"))
def test_a_fragment_compiles(where: str, directive: str, body: str) -> None:
    compile(body, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def serve(tmp_path: Path, directive: str) -> tuple[subprocess.Popen[str], str]:
    """`voiceclient serve` on a free port, in the example's directory (its files, and the project's fixtures)."""
    if not (tmp_path / "fixtures").exists():
        (tmp_path / "fixtures").symlink_to(ROOT / "fixtures")
    args = directive.split()[1:] if directive.startswith("serve") else ["--scenario", str(ASSETS / "demo.toml")]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "voiceclient",
            "serve",
            "--port",
            "0",
            "--vad",
            "energy",
            "--no-speech",
            "--api-key",
            "sk-local",
            *args,
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    found = re.search(r"(http://\S+/v1)", line)
    assert found, line
    return process, found.group(1)


@pytest.mark.webrtc
@pytest.mark.parametrize(("where", "directive", "body"), cases(PYTHON, "program"))
def test_a_program_runs_against_serve(where: str, directive: str, body: str, tmp_path: Path) -> None:
    skip_unless_installed(body)
    shutil.copy(ASSETS / "demo_user.wav", tmp_path / "question.wav")
    write_page_files(where, tmp_path)
    (tmp_path / "example.py").write_text(body, encoding="utf-8")
    server, url = serve(tmp_path, directive)
    try:
        env = {**os.environ, "OPENAI_BASE_URL": url, "OPENAI_API_KEY": "sk-local"}
        done = subprocess.run(
            [sys.executable, "example.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
    finally:
        server.terminate()
        server.wait(10)
    assert done.returncode == 0, f"{where}:\n{done.stdout}\n{done.stderr}"
    for name in re.findall(r'(?:output_wav|Recording\(output_wav)="([^"]+\.wav)"', body):
        assert (tmp_path / name).stat().st_size > 10_000, f"{where}: {name} holds no answer"


@pytest.mark.webrtc
@pytest.mark.parametrize(("where", "directive", "body"), cases(PYTHON, "test"))
def test_a_test_example_passes_under_pytest(where: str, directive: str, body: str, tmp_path: Path) -> None:
    (tmp_path / "test_example.py").write_text(body, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_example.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert done.returncode == 0 and " passed" in done.stdout, f"{where}:\n{done.stdout[-3000:]}\n{done.stderr}"


def command_lines() -> list[tuple[str, str, list[str]]]:
    """(where, subcommand, flags) of each `voiceclient SUB ...` line of a plain block (a command continues on
    the next line after a `\\`; a usage line on the lines indented below it)."""
    found = []
    for where, _, body in blocks(""):
        lines = body.replace("\\\n", " ").split("\n")
        for i, line in enumerate(lines):
            m = re.match(r"^(?:\$ )?voiceclient (\w+)\b(.*)", line)
            if not m:
                continue
            rest = [m[2]]
            for more in lines[i + 1 :]:
                if not more.startswith(" " * 8):
                    break
                rest.append(more)
            text = " ".join(rest).split(" #")[0]
            found.append((where, m[1], sorted(set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", text)))))
    return found


def test_every_command_shown_has_the_options_it_shows() -> None:
    lines = command_lines()
    assert {sub for _, sub, _ in lines} >= {"call", "talk", "serve", "report", "devices"}
    helps: dict[str, str] = {}
    wrong = []
    for where, sub, flags in lines:
        if sub not in helps:
            done = subprocess.run(
                [sys.executable, "-m", "voiceclient", sub, "--help"],
                capture_output=True,
                text=True,
                timeout=60,
                env={**os.environ, "COLUMNS": "200"},
            )
            assert done.returncode == 0, f"{where}: voiceclient {sub} --help failed: {done.stderr}"
            helps[sub] = done.stdout
        wrong += [
            f"{where}: voiceclient {sub} {flag}"
            for flag in flags
            if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", helps[sub])
        ]
    assert not wrong, "options the docs show that the command does not have:\n" + "\n".join(wrong)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def as_script(body: str) -> str:
    """A block of commands as a bash script, as a reader would type them: `voiceclient serve` in the background
    on a port it picks itself (`--port 0`: a free port found beforehand could be taken meanwhile by a test running
    beside it), each next command once the server says where it listens, with that port for 8000; the servers
    stopped at the end."""
    script = [
        "set -euo pipefail",
        "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT",
        "ready() { for _ in $(seq 600); do grep -q 'http://' \"$1\" && break; sleep 0.1; done",
        "  PORT=$(grep -o -m1 'http://127.0.0.1:[0-9]*' \"$1\" | cut -d: -f3 || true)",
        '  [ -n "$PORT" ] || { cat "$1"; exit 1; }; }',
    ]
    servers = 0
    for line in body.replace("\\\n", " ").split("\n"):
        line = line.split("  #")[0].strip()
        if not line:
            continue
        if line.startswith("voiceclient serve"):
            servers += 1
            line = line.removesuffix("&").strip().replace("--port 8000", "--port 0")
            if "--port" not in line:
                line += " --port 0"
            script += [f"{line} >serve{servers}.log 2>&1 &", f"ready serve{servers}.log"]
        else:
            script.append(line.replace("8000", "$PORT"))
    return "\n".join(script) + "\n"


def run_in_group(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int) -> subprocess.CompletedProcess[str]:
    """Run `cmd` in a process group of its own, and end the whole group when it ends or times out: a block's
    `voiceclient serve ... &` would otherwise hold the output pipes open, and the wait for them would hang."""
    process = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        raise AssertionError(f"{cmd} ran over {timeout} s:\n{out[-2000:]}\n{err[-2000:]}") from None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(cmd, process.returncode, out, err)


RUN = [b for b in blocks("") if b[1] == "run"]


@pytest.mark.webrtc
@pytest.mark.parametrize(("where", "directive", "body"), cases(RUN))
def test_a_block_of_commands_runs(where: str, directive: str, body: str, tmp_path: Path) -> None:
    skip_unless_installed(body)
    write_page_files(where, tmp_path)
    for name in ("fixtures", "scripts"):
        (tmp_path / name).symlink_to(ROOT / name)
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)
    shutil.copy(ASSETS / "demo_user.wav", tmp_path / "question.wav")
    (tmp_path / "block.sh").write_text(as_script(body), encoding="utf-8")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = run_in_group(["bash", "block.sh"], cwd=tmp_path, env=env, timeout=150)
    logs = "".join(p.read_text() for p in sorted(tmp_path.glob("serve*.log")))
    assert done.returncode == 0, f"{where}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}\n{logs[-2000:]}"
    for out in re.findall(r"--output (\S+\.wav)", body):
        assert (tmp_path / out).stat().st_size > 10_000, f"{where}: {out} holds no answer"


def test_some_blocks_of_commands_are_run() -> None:
    assert len(RUN) >= 4


# What the site's code column shows without a scroll bar (Chromium, 1280 and 1600 px wide: 80 characters fit,
# 81 do not). Program output goes in `text` blocks, which the site wraps (docs/extra.css).
WIDTH = 80


def test_no_line_of_code_is_wider_than_the_column() -> None:
    wide = [
        f"{where}: {len(line)} characters: {line.strip()[:50]}..."
        for where, lang, _, body in all_blocks()
        if lang != "text"
        for line in body.split("\n")
        if len(line) > WIDTH
    ]
    assert not wide, "\n".join(wide)


def test_the_architecture_page_states_the_layer_rules_the_test_enforces() -> None:
    from .test_architecture import ALLOWED

    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `(\w+)` \| (.*) \|$", text, re.M))
    assert set(rows) == set(ALLOWED)
    for layer, allowed in ALLOWED.items():
        assert set(re.findall(r"`(\w+)`", rows[layer])) == allowed, layer


# The site itself: scripts/docs builds a copy of the docs (its own site/), so a test never touches the reader's.
needs_mkdocs = pytest.mark.skipif(
    shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None,
    reason="the docs group is not installed (scripts/docs installs it)",
)
LINK = re.compile(r'(?:href|src)="([^"#?]+)[^"]*"')
MARKDOWN_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s#]+)[^)]*\)")


def docs_tree(tmp_path: Path) -> Path:
    """The docs and mkdocs.yml copied, the rest of the project linked: a tree scripts/docs builds as it is."""
    for name in ("scripts", "voiceclient", "pyproject.toml", "CHANGELOG.md"):
        (tmp_path / name).symlink_to(ROOT / name)
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    return tmp_path


def build(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(tree / "scripts" / "docs")], cwd=tree, capture_output=True, text=True, timeout=150
    )


@needs_mkdocs
def test_the_site_builds_without_a_warning_and_works_from_files(tmp_path: Path) -> None:
    tree = docs_tree(tmp_path)
    done = build(tree)
    assert done.returncode == 0 and "WARNING" not in done.stderr + done.stdout, done.stderr
    site = tree / "site"
    # From file://, a link to a directory opens its listing, not its page: every local link is a file.
    broken = []
    for page in sorted(set(site.glob("*.html")) - {site / "404.html"}):  # (404.html is for a server: from /)
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):
                continue
            if not (page.parent / target).is_file():
                broken.append(f"{page.name}: {target}")
    assert not broken, "links that open no file from file://:\n" + "\n".join(broken)
    for name, image in (("serve.html", "console.png"), ("report.html", "report.png")):
        assert f'src="{image}"' in (site / name).read_text(encoding="utf-8"), name
        assert (site / image).stat().st_size > 10_000


def test_every_relative_link_of_the_markdown_resolves_where_the_page_is() -> None:
    """As a repository page shows them (relative to the page's own folder), so the same paths work there too."""
    broken = [
        f"{page.relative_to(ROOT)}: {target}"
        for page in PAGES
        for target in MARKDOWN_LINK.findall(page.read_text(encoding="utf-8"))
        if not re.match(r"[a-z]+:", target) and not (page.parent / target).exists()
    ]
    assert not broken, "\n".join(broken)


@needs_mkdocs
def test_a_broken_image_fails_the_build(tmp_path: Path) -> None:
    tree = docs_tree(tmp_path)
    with (tree / "docs" / "report.md").open("a", encoding="utf-8") as page:
        page.write("\n![a picture that is not there](docs/missing.png)\n")
    done = build(tree)
    assert done.returncode != 0
    assert re.search(r"^WARNING .*docs/missing\.png", done.stderr, re.M), done.stderr


@needs_mkdocs
def test_the_live_site_serves_the_pages_and_images(tmp_path: Path) -> None:
    import urllib.request

    tree = docs_tree(tmp_path)
    port = free_port()
    server = subprocess.Popen(
        ["bash", str(tree / "scripts" / "docs"), "serve", str(port)],
        cwd=tree,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert server.stderr is not None
        seen = []
        for line in server.stderr:
            seen.append(line)
            if "Serving on" in line:
                break
        assert any(f"http://127.0.0.1:{port}/" in line for line in seen), "".join(seen)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/serve.html", timeout=30) as answer:
            assert 'src="console.png"' in answer.read().decode()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/console.png", timeout=30) as answer:
            assert answer.headers["Content-Type"] == "image/png"
    finally:
        os.killpg(server.pid, 15)
        server.wait(10)
