"""The README and docs/ as users read them: every example runs as written, every setting and
command is documented, every relative link leads somewhere.

Each fenced `python`, `sh` or `console` block of README.md and docs/*.md runs, in one folder
synced once with the tiny model: Python blocks are executed, shell blocks run their `docsync`
commands through the CLI in-process (a `console` block: its `$ ` lines), and each must exit 0.
A block that cannot run here (it installs packages, needs docker, a server or a daemon left
running) says so on the line before its fence: `<!-- not run: needs docker -->`. A shell line
that is not a `docsync` command, or pipes one into another, fails the test until its block is
marked, so no example is skipped silently.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from docsync.plugin.settings import Settings
from docsync.worker.cli import cli
from tests.conftest import CORPUS

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(
    r"^(?:<!-- not run: (?P<why>[^>]+?) -->\n)?```(?P<lang>[\w-]*)\n(?P<body>.*?)^```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
RUN = ("python", "sh", "console")
SHOWN = ("json", "ini", "text")  # shown, not run: json is checked to parse
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} (.+)$", re.MULTILINE)
SETTING = re.compile(r"\bDOCSYNC_[A-Z][A-Z0-9_]*[A-Z0-9]\b")
# The example folder: what the examples name (docs/howto/sockets.rst, questions.jsonl).
EXAMPLE_FILES = ("sockets.rst", "enum.rst")
QUESTIONS = [
    {"question": "How do I open a TCP connection?", "path": "howto/sockets.rst"},
    {"question": "Why is my enum member not equal to its value?", "path": "howto/enum.rst"},
]


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    lang: str
    body: str
    not_run: str | None

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks() -> list[Block]:
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start("lang")) + 1
            lang, body, why = match["lang"], match["body"], match["why"]
            found.append(Block(page, line, lang, body, why))
    return found


BLOCKS = blocks()


def _ids(block: Block) -> str:
    return block.name


@pytest.fixture(scope="module")
def example_folder(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path
) -> Iterator[Path]:
    """A working folder holding `docs/howto/` and `questions.jsonl`, synced once into the
    embedded store at its default place, with the settings pointing at the tiny model."""
    folder = tmp_path_factory.mktemp("examples")
    howto = folder / "docs" / "howto"
    howto.mkdir(parents=True)
    for name in EXAMPLE_FILES:
        shutil.copy(CORPUS / "howto" / name, howto / name)
    lines = (json.dumps(question) for question in QUESTIONS)
    (folder / "questions.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("DOCSYNC_"):
                patch.delenv(name)
        patch.chdir(folder)
        patch.setenv("DOCSYNC_MODEL", str(tiny_model_dir))
        assert cli("sync", "docs") == 0
        yield folder


def _commands(block: Block) -> Iterator[list[str]]:
    """The command lines of a shell block, split into words (comments dropped)."""
    for line in block.body.splitlines():
        if block.lang == "console":
            if not line.startswith("$ "):
                continue  # the output a command printed
            line = line[2:]
        words = shlex.split(line, comments=True)
        if words:
            yield words


def _run_shell(words: list[str], where: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.MonkeyPatch.context() as patch:
        while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
            name, _, value = words.pop(0).partition("=")
            patch.setenv(name, value)
        target = None
        if len(words) > 2 and words[-2] == ">":
            target, words = Path(words[-1]), words[:-2]
        if not words or words[0] != "docsync" or {"|", "&&", ";", "<"} & set(words):
            pytest.fail(
                f"{where}: {shlex.join(words)!r} is not one docsync command; mark "
                "its block <!-- not run: why --> or make it one"
            )
        code = cli(*words[1:])
        out, err = capsys.readouterr()
        assert code == 0, f"{where}: {shlex.join(words)} exited {code}\n{err}"
        if target is not None:
            target.write_text(out, encoding="utf-8")


@pytest.mark.parametrize(
    "block", [b for b in BLOCKS if b.lang in RUN and b.not_run is None], ids=_ids
)
def test_an_example_runs(
    block: Block, example_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if block.lang == "python":
        code = compile(block.body, block.name, "exec")
        exec(code, {"__name__": "__docs__"})  # the docs' own example, as a reader runs it
        return
    commands = list(_commands(block))
    assert commands, f"{block.name}: a shell block with no command"
    for words in commands:
        _run_shell(words, block.name, capsys)


def test_every_block_is_run_or_says_why() -> None:
    for block in BLOCKS:
        assert block.lang in RUN + SHOWN, f"{block.name}: a block without a known language"
        if block.not_run is not None:
            assert block.lang in RUN, f"{block.name}: only runnable blocks are marked not run"
            assert block.not_run.strip(), f"{block.name}: say why it is not run"
        if block.lang == "json":
            try:
                json.loads(block.body)
            except json.JSONDecodeError:  # JSON lines, as docsync eval reads them
                for line in block.body.splitlines():
                    json.loads(line)
    assert any(b.not_run is None and b.lang == "python" for b in BLOCKS)


def test_every_setting_is_documented() -> None:
    """docs/configuration.md's table names every setting, and the docs name no other
    `DOCSYNC_*` variable than those and the test suite's own."""
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    table = set(re.findall(r"^\| `(DOCSYNC_[A-Z_]+)`", page, re.MULTILINE))
    settings = {f"DOCSYNC_{name.upper()}" for name in Settings.model_fields}
    assert table == settings
    sources = [*ROOT.glob("tests/*.py"), *ROOT.glob("bench/*.py")]
    known = settings | {n for p in sources for n in SETTING.findall(p.read_text("utf-8"))}
    named = {n for page in PAGES for n in SETTING.findall(page.read_text(encoding="utf-8"))}
    assert named <= known, f"the docs name variables docsync does not read: {named - known}"


def _help(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with contextlib.suppress(SystemExit):  # argparse exits after printing its help
        cli(*args, "--help")
    return capsys.readouterr().out


def test_every_command_and_option_is_documented(capsys: pytest.CaptureFixture[str]) -> None:
    """Each command `docsync --help` lists is in the README and docs/commands.md, and each
    option of its own --help is in docs/commands.md."""
    commands = re.findall(r"^\s+([a-z][a-z-]*)\s{2,}\S", _help(capsys), re.MULTILINE)
    assert {"sync", "run", "query", "status"} <= set(commands)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    page = (ROOT / "docs" / "commands.md").read_text(encoding="utf-8")
    for command in commands:
        assert f"docsync {command}" in readme and f"docsync {command}" in page, command
        options = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", _help(capsys, command)))
        missing = {o for o in options - {"--help"} if not re.search(rf"{o}(?![\w-])", page)}
        assert not missing, f"docsync {command}: {sorted(missing)} not in docs/commands.md"


def _anchors(page: Path) -> set[str]:
    """The anchors GitHub gives a page's headings."""
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.M | re.S)
    return {
        re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        for heading in HEADING.findall(text)
    }


def test_every_relative_link_resolves() -> None:
    for page in PAGES:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):
                continue  # https:, mailto:
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            assert linked.exists(), f"{page.name}: {target} names no file"
            if anchor and linked.suffix == ".md":
                assert anchor in _anchors(linked), f"{page.name}: {target} names no heading"
