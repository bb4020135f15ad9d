"""Every `imhi-bench ...` command README shows goes through the argument parser, so a renamed
or removed option cannot leave README stale (issue 24)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from imhi_bench.cli.main import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"
_OPTIONAL = re.compile(r"\[([^\[\]]*)\]")


def readme_commands() -> list[str]:
    """The imhi-bench command lines of README's code blocks, continuation lines joined and
    comments cut."""
    commands, block, pending = [], False, ""
    for line in README.read_text("utf-8").splitlines():
        if line.startswith("```"):
            block = not block
            continue
        if not block:
            continue
        text = pending + line.strip()
        if text.endswith("\\"):
            pending = text[:-1] + " "
            continue
        pending = ""
        text = re.sub(r"\s{2,}#.*$", "", text)
        for part in re.split(r"\s*&&\s*", text):
            part = re.sub(r"^(\S+=\S+\s+)+", "", part)  # VAR=value prefixes
            if re.match(r"^(\.venv/bin/)?imhi-bench\s", part):
                commands.append(part)
    return commands


def _expand(command: str) -> str:
    """README's notation made concrete: `[A | B]` takes A, `[--opt VALUE]` is kept,
    `[key=value ...]` is dropped."""
    def one(m: re.Match) -> str:
        inner = m.group(1)
        if "..." in inner:
            return ""
        return inner.split("|")[0].strip()

    while _OPTIONAL.search(command):
        command = _OPTIONAL.sub(one, command)
    return re.sub(r"\b(N|K|ID|RUN_ID)\b", "1", command)  # number placeholders


COMMANDS = readme_commands()


def test_readme_has_commands():
    assert len(COMMANDS) > 20


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_parses(command):
    argv = shlex.split(_expand(command))[1:]
    try:
        build_parser().parse_args(argv)
    except SystemExit as e:  # argparse: 0 for --help-like actions, 2 for an error
        assert e.code == 0, f"README command does not parse: {command}"
