"""meta-eval: annotation loading, correlations, and the command offline with tiny models."""

from __future__ import annotations

import csv
import json

import pytest
from scipy import stats
from tiny_models import minilm_dir, tiny_bart_dir, torch_threads

from imhi_bench.cli import main as cli
from imhi_bench.core.errors import ImhiError
from imhi_bench.scoring.meta_eval import (
    ANNOTATION_DIR,
    ASPECTS,
    correlate,
    load_annotations,
    parse_ratings,
)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models: one thread is faster and immune to CPU contention (tiny_models)."""
    with torch_threads(1):
        yield


def run_cli(argv: list[str], monkeypatch) -> int:
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("imhi_bench.cli.meta_eval",))
    return cli.main(argv)


@pytest.fixture(scope="module")
def small_data(imhi_dir, tmp_path_factory):
    """A data dir with the first 10 rows of each released annotation file (in tmp)."""
    root = tmp_path_factory.mktemp("imhi-small")
    dest = root / ANNOTATION_DIR
    dest.mkdir(parents=True)
    for path in sorted((imhi_dir / ANNOTATION_DIR).glob("*.csv")):
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = list(csv.reader(f))
        with open(dest / path.name, "w", encoding="utf-8", newline="") as f:
            csv.writer(f).writerows(rows[:11])
    return root


def test_parse_ratings():
    assert parse_ratings("[3, 2, 3]") == pytest.approx(8 / 3)
    assert parse_ratings("[0, 1, 0]") == pytest.approx(1 / 3)
    assert parse_ratings("2") == 2.0
    with pytest.raises(ImhiError, match="no rating in 'n/a' at x.csv row 3"):
        parse_ratings("n/a", "x.csv row 3")


def test_load_released_annotations():
    samples = load_annotations()
    by_file = {}
    for s in samples:
        by_file.setdefault(s.file, []).append(s)
    assert {k: len(v) for k, v in by_file.items()} == {
        "chatgpt_data": 121, "chatgpt_false_data": 43, "gpt3_data": 121}
    # chatgpt_false_data's header starts with a BOM; it must not hide the text column.
    assert all(s.post for s in by_file["chatgpt_false_data"])
    assert by_file["gpt3_data"][0].model == "curie-instruct-beta"
    assert by_file["chatgpt_data"][0].model == "gpt-3.5-turbo"
    first = by_file["chatgpt_data"][0]
    assert first.ratings == pytest.approx({"fluency": 8 / 3, "completeness": 7 / 3,
                                           "reliability": 8 / 3, "overall": 7 / 3})
    assert first.explanation.startswith("No.")


def test_correlate_matches_scipy_and_handles_constants():
    x, y = [1.0, 2.0, 3.0, 4.0, 5.5], [2.0, 1.0, 4.0, 3.0, 5.0]
    got = correlate(x, y)
    assert got["pearson"] == pytest.approx(stats.pearsonr(x, y).statistic)
    assert got["spearman"] == pytest.approx(stats.spearmanr(x, y).statistic)
    assert got["kendall"] == pytest.approx(stats.kendalltau(x, y).statistic)
    assert 0 < got["pearson_p"] < 1
    assert correlate([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])["pearson"] is None
    assert correlate([1.0, 2.0], [1.0, 2.0])["kendall"] is None


def test_meta_eval_command_offline(small_data, tmp_path, monkeypatch, capsys):
    out = tmp_path / "meta.json"
    rc = run_cli(["meta-eval", "--data-dir", str(small_data), "--bart-model", str(tiny_bart_dir()),
                  "--bertscore-model", str(minilm_dir()), "--json", str(out)], monkeypatch)
    assert rc == 0
    text = capsys.readouterr().out
    assert "n=30" in text and "pearson" in text and "non-clinical" in text
    assert "source = post, target = explanation" in text
    for metric in ("bart_score", "bertscore_f1", "rougeL"):
        assert metric in text
    result = json.loads(out.read_text())
    assert result["files"]["all"]["n"] == 30
    assert set(result["correlations"]) == {"all", "chatgpt_data", "chatgpt_false_data",
                                           "gpt3_data"}
    for metric in ("bart_score", "bertscore_f1", "rougeL"):
        for aspect in ASPECTS:
            c = result["correlations"]["all"][metric][aspect]
            assert -1.0 <= c["pearson"] <= 1.0 and -1.0 <= c["kendall"] <= 1.0
    assert result["models"]["bart"] == str(tiny_bart_dir())


def test_meta_eval_full_released_data_rouge(monkeypatch, capsys, tmp_path):
    rc = run_cli(["meta-eval", "--metrics", "rouge", "--json", str(tmp_path / "m.json")],
                 monkeypatch)
    assert rc == 0
    assert "n=285" in capsys.readouterr().out
    result = json.loads((tmp_path / "m.json").read_text())
    assert list(result["correlations"]["all"]) == ["rougeL"]
    assert result["correlations"]["all"]["rougeL"]["overall"]["spearman"] is not None


@pytest.mark.parametrize("argv, message", [
    (["--metrics", "bleu"], "unknown quality metric 'bleu'"),
    (["--metrics", ","], "--metrics is empty"),
    (["--metrics", "rouge", "--bart-checkpoint", "x.pth"], "add bart to --metrics"),
])
def test_meta_eval_errors(argv, message, monkeypatch, capsys, tmp_path):
    out = tmp_path / "m.json"
    assert run_cli(["meta-eval", *argv, "--json", str(out)], monkeypatch) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_meta_eval_missing_annotations(tmp_path, monkeypatch, capsys):
    assert run_cli(["meta-eval", "--metrics", "rouge", "--data-dir", str(tmp_path)],
                   monkeypatch) == 2
    assert "no annotation files" in capsys.readouterr().err
