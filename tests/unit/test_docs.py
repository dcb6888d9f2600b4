"""The docs are true to the code: every ``corral ...`` command the README and docs/ show
parses with the real CLI (its command and options exist, flags take the values shown),
every job document shown is one the daemon accepts, every config block one the daemon
loads, and the Python examples compile. A renamed option or field fails here, not in a
new user's terminal."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from corral.cli.args import UsageError, parse
from corral.cli.main import COMMANDS
from corral.config import parse_config
from corral.spec import load_documents, load_yaml_all

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
#: What may come before ``corral`` on a line shown (sudo, environment assignments).
PREFIX = re.compile(r"^(sudo\s+)?((\w+=\S*)\s+)*")


def blocks(kind: str) -> list[tuple[str, str]]:
    out = []
    for path in DOCS:
        for lang, body in FENCE.findall(path.read_text()):
            if lang == kind:
                out.append((path.name, body))
    return out


def _strip_comment(line: str) -> str:
    """A shell comment: ``#`` at a word start outside quotes."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def shown_commands() -> list[tuple[str, str]]:
    """Every ``corral`` command in the docs' shell blocks: (where, command line)."""
    found = []
    for where, body in blocks("sh"):
        text = re.sub(r"\\\n\s*", " ", body)                  # continuation lines
        for line in text.splitlines():
            for piece in re.split(r";|&&|\|\|?", _strip_comment(line)):
                piece = PREFIX.sub("", piece.strip())
                if piece.startswith("corral "):
                    found.append((where, piece))
    return found


COMMANDS_SHOWN = shown_commands()


def test_the_docs_show_commands_at_all():
    assert len(COMMANDS_SHOWN) > 25 and {shlex.split(c)[1] for _, c in COMMANDS_SHOWN} >= {"submit", "ps", "sim"}


@pytest.mark.parametrize("where,line", COMMANDS_SHOWN, ids=[f"{w}: {c[:60]}" for w, c in COMMANDS_SHOWN])
def test_every_command_shown_parses(where, line):
    argv = shlex.split(line)[1:]
    while argv and argv[0].startswith(("--home", "--url", "--json")):     # the global options
        argv = argv[2:] if argv[0] in ("--home", "--url") else argv[1:]
    command = COMMANDS.get(argv[0])
    assert command is not None, f"{where}: `{line}`: no command {argv[0]!r}"
    try:
        parse(command, argv[1:])
    except UsageError as exc:
        pytest.fail(f"{where}: `{line}`: {exc}")


def _is_job(doc: object) -> bool:
    return isinstance(doc, dict) and doc.get("kind") == "Job"


def test_every_job_document_shown_is_accepted():
    shown = 0
    for where, body in blocks("yaml"):
        docs = [d for d in load_yaml_all(body, source=where) if d is not None]
        if docs and all(_is_job(d) for d in docs):
            assert load_documents(body, source=where), where
            shown += 1
    assert shown >= 1


def test_every_config_block_shown_is_loaded():
    shown = 0
    for where, body in blocks("yaml"):
        docs = [d for d in load_yaml_all(body, source=where) if d is not None]
        if docs and not any(_is_job(d) for d in docs) and isinstance(docs[0], dict):
            parse_config(docs[0], where)               # raises the one-line error naming the field
            shown += 1
    assert shown >= 3


def test_every_python_example_compiles():
    shown = blocks("python")
    assert shown
    for where, body in shown:
        compile(body, where, "exec")
