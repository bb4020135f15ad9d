"""The data layer: set registry, data dir resolution, loading, validation, `data check`."""

from __future__ import annotations

import shutil

import pytest

from imhi_bench.benchmark.data import (
    check,
    load_examples,
    load_split,
    resolve_data_dir,
)
from imhi_bench.benchmark.release import release_manifest
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


def test_missing_files_say_how_to_get_them_into_this_data_dir(imhi_dir, tmp_path):
    # SWMH's test files are in the release (the shared copy predates them): fetch them here
    with pytest.raises(ImhiError) as e:
        load_examples("swmh", "instruction", imhi_dir)
    assert str(e.value) == (
        f"IMHI swmh instruction file is missing: put it at "
        f"{imhi_dir / 'test_data/test_instruction/swmh.csv'} "
        f"(run `imhi-bench data fetch --dest {imhi_dir}`)")
    with pytest.raises(ImhiError, match=f"data fetch --dest {tmp_path}`"):
        load_examples("DR", "completion", tmp_path)
    # CLP was never released, and the expert set has no CLP file
    with pytest.raises(ImhiError) as e:
        load_examples("CLP", "completion", imhi_dir)
    assert str(e.value).startswith(
        f"IMHI CLP completion file is missing: put it at "
        f"{imhi_dir / 'test_data/test_complete/CLP.csv'} (CLP (CLPsych 2015) was never "
        "released by MentaLLaMA")
    assert "data fetch" not in str(e.value)
    with pytest.raises(ImhiError, match="IMHI has no CLP expert file"):
        load_examples("CLP", "expert", imhi_dir)


def test_train_splits(imhi_dir):
    assert len(load_split("DR", "train", "instruction", imhi_dir)) == 1003
    assert len(load_split("SAD", "val", "completion", imhi_dir)) == 616
    with pytest.raises(ImhiError, match="no released 'train' split for CAMS"):
        load_split("CAMS", "train", "instruction", imhi_dir)


def test_manifest_matches_the_shared_copy(imhi_dir):
    manifest = release_manifest()
    assert len(manifest) == 51
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
    assert {statuses[("CLP", f)].state for f in ("instruction", "completion", "expert")} == {
        "unreleased"}
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
    out = capsys.readouterr().out.rstrip().splitlines()
    assert out[-2] == ("OK: 25 of 30 files match the MentaLLaMA release, 2 missing, "
                       f"3 unreleased; `imhi-bench data fetch --dest {imhi_dir}` gets the "
                       "missing ones")
    assert "non-clinical research only" in out[-1]
    assert (f"- swmh instruction: IMHI swmh instruction file is missing: put it at "
            f"{imhi_dir / 'test_data/test_instruction/swmh.csv'} (run `imhi-bench data "
            f"fetch --dest {imhi_dir}`)") in out
    assert f"put it at {imhi_dir / 'test_data/test_complete/CLP.csv'} (CLP" in "\n".join(out)
    assert "- CLP expert: IMHI has no CLP expert file" in "\n".join(out)


def test_data_check_names_the_fix_for_the_dir_it_checked(imhi_dir, tmp_path, capsys):
    # nothing there: it fails, and the fix fetches into the dir the user named
    empty = tmp_path / "not yet"
    assert main(["data", "check", "--data-dir", str(empty)]) == 1
    last = capsys.readouterr().out.rstrip().splitlines()[-2]
    assert last.startswith(f"FAILED: no instruction file in {empty} (the folder does not "
                           f"exist): run `imhi-bench data fetch --dest '{empty}'`")
    assert not empty.exists()
    # an expert file alone is not enough to run the default tasks
    expert = "human_evaluation/test_instruction_expert/DR.csv"
    (tmp_path / expert).parent.mkdir(parents=True)
    shutil.copy(imhi_dir / expert, tmp_path / expert)
    assert main(["data", "check", "--data-dir", str(tmp_path)]) == 1
    assert "FAILED: no instruction file" in capsys.readouterr().out
    assert main(["data", "check", "--data-dir", str(tmp_path), "--formats", "expert"]) == 0
    assert "OK: 1 of 10 files match" in capsys.readouterr().out


def test_data_check_cli_fails_on_invalid_or_modified_file(imhi_dir, tmp_path, capsys):
    (tmp_path / "test_data/test_instruction").mkdir(parents=True)
    (tmp_path / "test_data/test_instruction/DR.csv").write_bytes(b"query,gpt-3.5-turbo\n\xff\n")
    assert main(["data", "check", "--data-dir", str(tmp_path), "--sets", "DR"]) == 1
    out = capsys.readouterr().out
    assert "not UTF-8" in out and "FAILED: 0 of 3 files match" in out
    src = (imhi_dir / "test_data/test_instruction/DR.csv").read_text(encoding="utf-8")
    (tmp_path / "test_data/test_instruction/DR.csv").write_text(src.replace("poster", "Poster", 1))
    assert main(["data", "check", "--data-dir", str(tmp_path), "--sets", "DR"]) == 1
    out = capsys.readouterr().out
    assert "differs from the released file (sha256 " in out
    assert "FAILED: 0 of 3 files match the MentaLLaMA release, 2 missing, 1 modified" in out
    shutil.copy(imhi_dir / "test_data/test_instruction/DR.csv",
                tmp_path / "test_data/test_instruction/DR.csv")
    assert main(["data", "check", "--data-dir", str(tmp_path), "--sets", "DR"]) == 0


def test_unknown_set_or_format_on_the_cli(capsys, imhi_dir):
    assert main(["data", "check", "--sets", "DR,nope"]) == 2
    assert "unknown IMHI set 'nope'" in capsys.readouterr().err
    assert main(["data", "check", "--formats", "chat"]) == 2
    assert "unknown format 'chat'" in capsys.readouterr().err
