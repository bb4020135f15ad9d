"""Every `imhi-bench ...` command README shows, in a code block or inline in its prose, goes
through the argument parser, so a renamed or removed option cannot leave README stale
(issue 24); README's example score JSON is what the scoring code gives for its counts."""

from __future__ import annotations

import argparse
import json
import re
import shlex
from pathlib import Path

import pytest

from imhi_bench.cli.main import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"
_OPTIONAL = re.compile(r"\[([^\[\]]*)\]")
_COMMAND = re.compile(r"^(\.venv/bin/)?imhi-bench\s")


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
            if _COMMAND.match(part):
                commands.append(part)
    return commands


def readme_inline_commands() -> list[str]:
    """The `imhi-bench ...` code spans of README's prose (outside code blocks), a span broken
    over two lines joined."""
    prose = re.sub(r"^```.*?^```", "", README.read_text("utf-8"), flags=re.S | re.M)
    spans = (" ".join(m.split()) for m in re.findall(r"`([^`]+)`", prose))
    return [s for s in spans if _COMMAND.match(s)]


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
    return re.sub(r"\b(N|K|ID|RUN_ID|DAYS)\b", "1", command)  # number placeholders


def _parses(argv: list[str]) -> bool:
    try:
        build_parser().parse_args(argv)
    except SystemExit as e:  # argparse: 0 for --help-like actions, 2 for an error
        return e.code == 0
    return True


def _names_a_command(argv: list[str]) -> bool:
    """Whether `argv` is a path of sub-command names (`eval`, `labeler agree`): prose names a
    command without the arguments it requires."""
    parser = build_parser()
    for word in argv:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or word not in subs[0].choices:
            return False
        parser = subs[0].choices[word]
    return bool(argv)


COMMANDS = readme_commands()
INLINE = sorted(set(readme_inline_commands()))


def test_readme_has_commands():
    assert len(COMMANDS) > 20
    assert len(INLINE) > 15
    assert "imhi-bench labeler agree" in INLINE  # README's figures for the rules come from it


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_parses(command):
    argv = shlex.split(_expand(command))[1:]
    assert _parses(argv), f"README command does not parse: {command}"


@pytest.mark.parametrize("command", INLINE)
def test_readme_inline_command_parses(command):
    """An inline span parses as written, or, with no option in it, names a command."""
    argv = shlex.split(_expand(command))[1:]
    named = not any(a.startswith("-") for a in argv) and _names_a_command(argv)
    assert named or _parses(argv), f"README command does not parse: {command}"


def test_inline_spans_that_name_no_command_fail():
    assert not _names_a_command(["labeler", "agreee"])
    assert not _names_a_command(["eval", "DR"])
    assert not _parses(["eval", "--no-such-option"])


def _example_score_json() -> dict:
    """DR's object in README's `--json` example (the rest of the block elides with ...)."""
    text = README.read_text("utf-8")
    start = text.index('{"sets": {"DR": ') + len('{"sets": {"DR": ')
    depth = 0
    for end, ch in enumerate(text[start:], start):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth == 0:
            return json.loads(text[start:end + 1])
    raise AssertionError("README's example score JSON has no closed DR object")


def test_readme_example_score_json_is_what_scoring_gives_for_its_counts():
    from imhi_bench.scoring.pipeline import Sample, score_samples

    shown = _example_score_json()
    conf = shown["confusion"]
    samples = []
    for gold, row in zip(conf["gold"], conf["counts"]):
        for read, n in zip(conf["read"], row):
            label = None if read == "unreadable" else read
            samples += [Sample("DR", len(samples) + i, "", "", gold, label, label == gold)
                        for i in range(n)]
    # DR's real test set: 98 no, 307 yes
    assert [sum(row) for row in conf["counts"]] == [98, 307]
    got = score_samples({"DR": samples})["sets"]["DR"]
    assert shown == got
