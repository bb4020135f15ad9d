"""The generation cache file: concurrent openers, and `imhi-bench cache info|prune`."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from concurrency import errors_in_threads

from imhi_bench.cli.main import main
from imhi_bench.models import generation_cache
from imhi_bench.models.generation_cache import FILE_NAME, GenerationCache, prune, summary


def test_workers_opening_a_new_cache_at_once_all_succeed_and_share_it(tmp_path):
    """Two submission workers may start on a fresh cache together: opening switches the new
    file to WAL, which deadlocks between simultaneous openers now and then (see
    sqlite_wal); every opener must still get the cache, and see the others' rows."""
    for attempt in range(30):
        path = tmp_path / f"cache{attempt}.sqlite"

        def opener(k: int, path=path) -> None:
            cache = GenerationCache(path, {"model": "m"})
            cache.put(cache.key(f"prompt {k}", {}), f"generation {k}")
            cache.close()

        assert errors_in_threads(opener, 6) == [], f"round {attempt}"
        reader = GenerationCache(path, {"model": "m"})
        keys = [reader.key(f"prompt {k}", {}) for k in range(6)]
        assert sorted(reader.get_many(keys).values()) == [f"generation {k}" for k in range(6)]
        reader.close()


def fill(cache_dir: Path, model: str, n: int, age_days: float = 0, **identity) -> str:
    """`n` generations of `model` in the cache, made `age_days` ago; returns its key."""
    cache = GenerationCache(cache_dir / FILE_NAME, {"backend": "hf", "model": model, **identity})
    for i in range(n):
        cache.put(cache.key(f"{model} prompt {i}", {"max_gen_toks": 256}), "x" * 2000)
    cache.close()
    if age_days:
        with sqlite3.connect(cache_dir / FILE_NAME) as db:
            db.execute("UPDATE generations SET created = created - ? WHERE model = ?",
                       (age_days * 86400, cache.model_key))
    return cache.model_key


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["cache", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_info_names_each_cached_model_newest_first(tmp_path, capsys):
    old = fill(tmp_path, "meta-llama/Llama-2-7b-hf", 3, age_days=30, revision="abc123")
    new = fill(tmp_path, str(tmp_path / "my-model"), 2)
    code, out, _ = cli(capsys, "info", "--cache-dir", str(tmp_path), "--json")
    info = json.loads(out)
    assert code == 0 and info["generations"] == 5 and info["bytes"] > 10_000
    assert [(m["key"], m["generations"]) for m in info["models"]] == [(new, 2), (old, 3)]
    assert info["models"][1]["identity"]["revision"] == "abc123"
    code, out, _ = cli(capsys, "info", "--cache-dir", str(tmp_path))
    assert "5 generations of 2 model(s)" in out
    assert "meta-llama/Llama-2-7b-hf [hf] (revision abc123)" in out
    assert out.index("my-model") < out.index("meta-llama")


def test_prune_by_age_then_model_then_all(tmp_path, capsys):
    fill(tmp_path, "old/model", 3, age_days=30)
    mine = tmp_path / "my-model"
    fill(tmp_path, str(mine), 2)
    fill(tmp_path, "other/model", 200)
    code, out, _ = cli(capsys, "prune", "--cache-dir", str(tmp_path), "--older-than", "7")
    assert code == 0 and "removed 3 generations" in out
    left = summary(tmp_path)
    assert {m["identity"]["model"] for m in left["models"]} == {str(mine), "other/model"}
    code, out, _ = cli(capsys, "prune", "--cache-dir", str(tmp_path), "--model", str(mine))
    assert code == 0 and "removed 2 generations" in out
    assert [m["identity"]["model"] for m in summary(tmp_path)["models"]] == ["other/model"]
    before = summary(tmp_path)["bytes"]
    result = prune(tmp_path, everything=True)
    assert result["removed"] == 200 and result["compacted"]
    after = summary(tmp_path)
    assert after["generations"] == 0 and after["bytes"] < before / 4
    # The emptied cache still works for the next eval.
    fill(tmp_path, "old/model", 1)
    assert summary(tmp_path)["generations"] == 1


def test_prune_by_key_prefix_and_bad_requests(tmp_path, capsys):
    key = fill(tmp_path, "some/model", 2)
    fill(tmp_path, "kept/model", 1)
    code, out, _ = cli(capsys, "prune", "--cache-dir", str(tmp_path), "--model", key[:12])
    assert code == 0 and "removed 2 generations" in out
    with pytest.raises(SystemExit) as e:  # argparse: exactly one selector
        cli(capsys, "prune", "--cache-dir", str(tmp_path))
    assert e.value.code == 2 and "one of the arguments" in capsys.readouterr().err
    for argv, problem in [
        (["--model", "not/cached"], "no cached generations for model 'not/cached'"),
        (["--older-than", "-1"], "--older-than must be a number of days >= 0"),
    ]:
        code, out, err = cli(capsys, "prune", "--cache-dir", str(tmp_path), *argv)
        assert code == 2 and problem in err and err.count("\n") == 1
    assert summary(tmp_path)["generations"] == 1  # nothing removed by a refused prune
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / FILE_NAME).write_text("not a database")
    code, _, err = cli(capsys, "info", "--cache-dir", str(tmp_path / "junk"))
    assert code == 2 and "not a readable generation cache" in err


def test_a_cache_from_before_models_were_recorded_still_lists(tmp_path, capsys):
    with sqlite3.connect(tmp_path / FILE_NAME) as db:
        db.execute("CREATE TABLE generations (key TEXT PRIMARY KEY, model TEXT NOT NULL, "
                   "generation TEXT NOT NULL, created REAL NOT NULL)")
        db.execute("INSERT INTO generations VALUES ('k', 'feedbeefcafe0123', 'g', 0)")
    code, out, _ = cli(capsys, "info", "--cache-dir", str(tmp_path))
    assert code == 0 and "(unnamed, key feedbeefcafe)" in out
    assert prune(tmp_path, model="feedbeefcafe")["removed"] == 1


def test_prune_while_another_process_writes_deletes_nothing(tmp_path, capsys, monkeypatch):
    fill(tmp_path, "some/model", 4)
    monkeypatch.setattr(generation_cache, "BUSY_TIMEOUT_S", 0.2)
    writer = sqlite3.connect(tmp_path / FILE_NAME, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # an eval committing a generation, for longer
    try:
        code, _, err = cli(capsys, "prune", "--cache-dir", str(tmp_path), "--all")
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert code == 2 and "nothing was deleted" in err and err.count("\n") == 1
    assert summary(tmp_path)["generations"] == 4
