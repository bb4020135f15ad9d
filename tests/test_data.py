"""The data layer: set registry, data dir resolution, loading, validation, `data check`."""

from __future__ import annotations

import pytest

from imhi_bench.benchmark.data import (
    check,
    load_examples,
    load_split,
    release_manifest,
    resolve_data_dir,
)
from imhi_bench.benchmark.sets import SET_NAMES, UNSEEN_SETS, get_set, parse_set_list
from imhi_bench.cli.main import main
from imhi_bench.core.errors import ImhiError
from imhi_bench.core.fileio import sha256_file

ROWS = {"CAMS": 625, "DR": 405, "dreaddit": 414, "Irf": 2113, "loneliness": 528,
        "MultiWD": 2441, "SAD": 684, "t-sid": 959}


def test_the_ten_sets_as_released():
    assert SET_NAMES == ("CAMS", "CLP", "DR", "dreaddit", "Irf", "loneliness", "MultiWD", "SAD",
                         "swmh", "t-sid")
    assert len({get_set(n).task for n in SET_NAMES}) == 8
    assert UNSEEN_SETS == ("CAMS", "dreaddit", "Irf", "t-sid")
    assert len(get_set("SAD").classes) == 9 and len(get_set("CAMS").classes) == 6
    assert [s.binary for s in parse_set_list("DR,sad,TSID")] == [True, False, False]
    with pytest.raises(ImhiError, match="unknown IMHI set 'foo'"):
        get_set("foo")


def test_data_dir_resolution_order(monkeypatch, tmp_path):
    monkeypatch.setenv("IMHI_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir(None) == tmp_path / "env"
    monkeypatch.delenv("IMHI_DATA_DIR")
    assert "imhi-bench" in str(resolve_data_dir(None))


@pytest.mark.parametrize("fmt", ["instruction", "completion"])
def test_load_examples_row_counts(imhi_dir, fmt):
    for name, n in ROWS.items():
        ex = load_examples(name, fmt, imhi_dir)
        assert len(ex) == n
        assert ex[0].doc_id == 0 and ex[0].query and ex[0].gold
    assert len(load_examples("swmh", "expert", imhi_dir)) == 35


def test_missing_sets_say_exactly_where_to_put_the_file(imhi_dir):
    with pytest.raises(ImhiError) as e:
        load_examples("swmh", "instruction", imhi_dir)
    msg = str(e.value)
    assert str(imhi_dir / "test_data/test_instruction/swmh.csv") in msg and "SWMH" in msg
    with pytest.raises(ImhiError, match="test_complete/CLP.csv"):
        load_examples("CLP", "completion", imhi_dir)


def test_train_splits(imhi_dir):
    assert len(load_split("DR", "train", "instruction", imhi_dir)) == 1003
    assert len(load_split("SAD", "val", "completion", imhi_dir)) == 616
    with pytest.raises(ImhiError, match="no released 'train' split for Irf"):
        load_split("Irf", "train", "instruction", imhi_dir)


def test_manifest_matches_the_shared_copy(imhi_dir):
    manifest = release_manifest()
    assert len(manifest) == 45
    for rel in ("test_data/test_instruction/DR.csv",
                "human_evaluation/test_instruction_expert/swmh.csv"):
        assert sha256_file(imhi_dir / rel) == manifest[rel]["sha256"]


def test_check_states(imhi_dir, tmp_path):
    statuses = {(s.set, s.fmt): s for s in check(imhi_dir)}
    assert len(statuses) == 30
    assert statuses[("DR", "instruction")].state == "ok"
    assert statuses[("DR", "instruction")].rows == 405
    assert statuses[("swmh", "instruction")].state == "missing"
    assert statuses[("swmh", "expert")].state == "ok"
    # a modified copy and an invalid file
    (tmp_path / "test_data/test_instruction").mkdir(parents=True)
    src = (imhi_dir / "test_data/test_instruction/DR.csv").read_text(encoding="utf-8")
    (tmp_path / "test_data/test_instruction/DR.csv").write_text(src.replace("poster", "Poster", 1))
    (tmp_path / "test_data/test_instruction/SAD.csv").write_text("a,b\n1,2\n")
    got = {(s.set, s.fmt): s.state for s in check(tmp_path, formats=["instruction"])}
    assert got[("DR", "instruction")] == "modified"
    assert got[("SAD", "instruction")] == "invalid"


def test_data_check_cli_guides_rather_than_crashes(imhi_dir, capsys):
    assert main(["data", "check", "--data-dir", str(imhi_dir)]) == 0
    out = capsys.readouterr().out
    assert "25 of 30 files match" in out
    assert f"put it at {imhi_dir / 'test_data/test_instruction/swmh.csv'}" in out
    assert f"put it at {imhi_dir / 'test_data/test_complete/CLP.csv'}" in out
    assert "non-clinical research only" in out


def test_data_check_cli_fails_on_invalid_file(tmp_path, capsys):
    (tmp_path / "test_data/test_instruction").mkdir(parents=True)
    (tmp_path / "test_data/test_instruction/DR.csv").write_bytes(b"query,gpt-3.5-turbo\n\xff\n")
    assert main(["data", "check", "--data-dir", str(tmp_path), "--sets", "DR"]) == 1
    assert "not UTF-8" in capsys.readouterr().out


def test_unknown_set_or_format_on_the_cli(capsys, imhi_dir):
    assert main(["data", "check", "--sets", "DR,nope"]) == 2
    assert "unknown IMHI set 'nope'" in capsys.readouterr().err
    assert main(["data", "check", "--formats", "chat"]) == 2
    assert "unknown format 'chat'" in capsys.readouterr().err
