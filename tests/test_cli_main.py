"""The CLI's one error path (`cli/main.py`): any exception a command raises reaches the user
as one line and exit 2, the traceback only under --debug / IMHI_DEBUG=1."""

from __future__ import annotations

import pytest

import imhi_bench.cli.status as status_cmd
from imhi_bench.cli.main import main
from imhi_bench.core.errors import ImhiError


def _raise(exc: BaseException):
    def run(args):
        raise exc
    return run


@pytest.mark.parametrize("exc", [
    ValueError("a library said no\nwith a second line\nand a third"),
    OSError(28, "No space left on device"),
    ImhiError("the store is read-only: point --db at a writable file"),
])
def test_any_error_is_one_line_exit_2(exc, monkeypatch, capsys):
    monkeypatch.delenv("IMHI_DEBUG", raising=False)
    monkeypatch.setattr(status_cmd, "run", _raise(exc))
    assert main(["status"]) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("imhi-bench: error: ")
    assert "Traceback" not in err and out == ""
    if isinstance(exc, ImhiError):
        assert lines[0] == f"imhi-bench: error: {exc}"
    else:
        assert type(exc).__name__ in lines[0] and "--debug" in lines[0]


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback(how, monkeypatch, capsys):
    monkeypatch.setattr(status_cmd, "run", _raise(ValueError("deep inside")))
    argv = ["status"]
    if how == "flag":
        argv = ["--debug", *argv]
    else:
        monkeypatch.setenv("IMHI_DEBUG", "1")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "deep inside" in err
    assert err.strip().splitlines()[-1].startswith("imhi-bench: error: ValueError: deep inside")


def test_ctrl_c_is_exit_130_not_a_traceback(monkeypatch, capsys):
    monkeypatch.setattr(status_cmd, "run", _raise(KeyboardInterrupt()))
    assert main(["status"]) == 130
    assert capsys.readouterr().err.strip() == "imhi-bench: interrupted"


@pytest.mark.parametrize("argv", [
    ["eval", "--model", "m", "--limit", "abc"],
    ["eval"],
    ["data"],
    ["nonsense"],
    [],
])
def test_argparse_errors_are_one_line_too(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("imhi-bench: error: "), err
    assert "--help`" in lines[0] and "usage:" not in err and out == ""


def test_a_store_url_error_comes_before_the_first_use_fetch(monkeypatch, capsys, tmp_path):
    """`eval --db nonsense://` on a machine with no data: the URL is refused at once, not
    after downloading the release."""
    import imhi_bench.benchmark.fetch as fetch

    monkeypatch.setattr(fetch, "ensure_release", _raise(AssertionError("fetched first")))
    assert main(["eval", "--model", str(tmp_path), "--db", "nonsense://foo"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("imhi-bench: error: unknown database kind") and "fetched" not in err


def test_top_level_help_lists_every_labeler_action(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    [line] = [x for x in capsys.readouterr().out.splitlines() if x.strip().startswith("labeler")]
    assert all(action in line for action in ("train", "eval", "agree"))


@pytest.mark.parametrize("task,near", [("imhi_dr2", "imhi_dr"), ("t_sid", "t-sid"),
                                       ("IMHI_SADD", "imhi_sad"), ("zzz", None)])
def test_an_unknown_task_offers_the_nearest_and_spells_the_accepted_names(task, near):
    from imhi_bench.runs.selection import select_tasks

    with pytest.raises(ImhiError) as e:
        select_tasks(task, "hf")
    text = str(e.value)
    assert text.startswith(f"unknown task {task!r}")
    assert (f"(did you mean {near}?)" in text) if near else "did you mean" not in text
    assert "imhi_expert_dr" in text and "t-sid" in text and "|" not in text
