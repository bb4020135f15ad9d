"""The IMHI lm-eval tasks: generated YAMLs, the hooks they call, and loading through lm-eval."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imhi_bench.benchmark.sets import FORMATS, SETS, UNSEEN_SETS
from imhi_bench.core.errors import ImhiError
from imhi_bench.tasks.hooks import load_dataset, macro_f1, process_results, weighted_f1
from imhi_bench.tasks.names import (
    GROUPS,
    MAX_GEN_TOKS,
    STOP_STRINGS,
    all_tasks,
    group_tasks,
    parse_task,
    task_name,
)
from imhi_bench.tasks.render import render_task_files

ROOT = Path(__file__).resolve().parents[1]
TASKS_YAML = ROOT / "tasks_yaml"


@pytest.fixture(autouse=True)
def _bart_score_off(monkeypatch):
    """Tests run offline, where the default BART (bart-large-cnn) fails the check at dataset
    load; tests of bart_score pass their model in the task metadata, which wins."""
    monkeypatch.setenv("IMHI_BART_MODEL", "none")


def test_tasks_yaml_is_up_to_date():
    """tasks_yaml/ is generated from imhi_bench/tasks/render.py; regenerate with
    `python scripts/generate_tasks_yaml.py` if this fails."""
    want = render_task_files()
    have = {p.name: p.read_text("utf-8") for p in TASKS_YAML.iterdir() if p.is_file()}
    assert sorted(have) == sorted(want)
    stale = [name for name, text in want.items() if have[name] != text]
    assert not stale, f"stale files in tasks_yaml/: {stale}"


def test_task_and_group_names_cover_every_set_and_format():
    tasks = all_tasks()
    assert len(tasks) == len(SETS) * len(FORMATS)
    slugs = {s.slug for s in SETS.values()}
    assert slugs == {"cams", "clp", "dr", "dreaddit", "irf", "loneliness", "multiwd", "sad",
                     "swmh", "tsid"}
    for slug in slugs:
        for prefix in ("imhi", "imhi_completion", "imhi_expert"):
            assert f"{prefix}_{slug}" in tasks
    assert task_name("t-sid") == "imhi_tsid"
    assert task_name("SAD", "completion") == "imhi_completion_sad"
    assert parse_task("imhi_expert_dr")[0].name == "DR"
    assert parse_task("imhi_expert_dr")[1] == "expert"
    assert parse_task("hellaswag") is None
    assert set(GROUPS) == {"imhi", "imhi_completion", "imhi_expert", "imhi_unseen"}
    assert group_tasks("imhi_unseen") == [task_name(s) for s in UNSEEN_SETS]
    assert group_tasks("imhi_unseen") == ["imhi_cams", "imhi_dreaddit", "imhi_irf", "imhi_tsid"]


def test_template_overrides_lm_eval_default_stop_and_is_greedy():
    import yaml

    cfg = yaml.load((TASKS_YAML / "_imhi_template_yaml").read_text(),
                    Loader=_function_tolerant_loader())
    gk = cfg["generation_kwargs"]
    assert gk["do_sample"] is False and gk["temperature"] == 0.0
    assert gk["max_gen_toks"] == MAX_GEN_TOKS == 256
    assert gk["until"] == list(STOP_STRINGS)
    assert "\n\n" not in gk["until"]
    assert cfg["output_type"] == "generate_until"


def _function_tolerant_loader():
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))
    return Loader


def test_stop_strings_never_cut_a_released_gold_response(imhi_dir):
    """Multi-paragraph explanations must survive: no stop string occurs in any released
    gold response (some have several paragraphs)."""
    from imhi_bench.benchmark.data import load_examples

    multi = 0
    for name in SETS:
        for fmt in FORMATS:
            if not (imhi_dir / SETS[name].path(fmt)).is_file():
                continue
            for e in load_examples(name, fmt, imhi_dir):
                multi += "\n\n" in e.gold
                for stop in STOP_STRINGS:
                    assert stop not in e.gold, (name, fmt, e.doc_id, stop)
    assert multi > 0  # the data does have multi-paragraph responses


def test_load_dataset_reads_through_the_data_layer(imhi_dir):
    ds = load_dataset(imhi_set="DR", imhi_format="completion",
                      imhi_data_dir=str(imhi_dir), version=1.0, pretrained="ignored")
    test = ds["test"]
    assert len(test) == 405
    row = test[0]
    assert row["set"] == "DR" and row["format"] == "completion" and row["doc_id"] == 0
    assert row["query"].startswith("Post:")
    assert row["gold"].lower().startswith("no")


def test_load_dataset_missing_file_gives_data_check_guidance(imhi_dir):
    from imhi_bench.benchmark.data import missing_file_message
    from imhi_bench.benchmark.sets import get_set

    with pytest.raises(ImhiError) as e:
        load_dataset(imhi_set="swmh", imhi_format="instruction", imhi_data_dir=str(imhi_dir))
    assert str(e.value) == missing_file_message(get_set("swmh"), "instruction", imhi_dir)
    assert "put it at" in str(e.value) and "swmh.csv" in str(e.value)


def test_process_results_and_aggregations_use_labels_and_metrics():
    from imhi_bench.scoring.metrics import score_set

    gold = "Yes, the poster suffers from depression. Reasoning: hopeless."
    doc = {"set": "DR", "gold": gold, "doc_id": 0}
    hit = process_results(doc, ["Yes, the poster suffers from depression. Reasoning: x"])
    miss = process_results(doc, ["No, the poster does not suffer from depression."])
    junk = process_results(doc, ["zzz"])
    # accuracy per sample is 0 or 100, so its mean is in percent like the F1s
    assert hit == {"weighted_f1": ("yes", "yes"), "accuracy": 100.0, "macro_f1": ("yes", "yes"),
                   "unparseable": 0, "bart_score": None}
    assert miss["accuracy"] == 0.0 and miss["weighted_f1"] == ("yes", "no")
    assert junk["unparseable"] == 1 and junk["weighted_f1"] == ("yes", None)
    items = [hit["weighted_f1"], miss["weighted_f1"], junk["weighted_f1"], ("no", "no")]
    ref = score_set([g for g, _ in items], [p for _, p in items], n_boot=0)
    assert weighted_f1(items) == ref.weighted_f1
    assert macro_f1(items) == ref.macro_f1
    assert 0 < weighted_f1(items) < 100


def test_task_manager_loads_tasks_and_groups(imhi_dir, tmp_path):
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=str(TASKS_YAML), include_defaults=False,
                     metadata={"imhi_data_dir": str(imhi_dir)})
    assert set(all_tasks()) <= set(tm.all_subtasks)
    assert set(GROUPS) <= set(tm.all_groups)
    loaded = tm.load(["imhi_unseen"])
    assert sorted(loaded["tasks"]) == sorted(group_tasks("imhi_unseen"))
    task = loaded["tasks"]["imhi_tsid"]
    assert task.config.generation_kwargs["until"] == list(STOP_STRINGS)
    doc = task.eval_docs[0]
    assert task.doc_to_text(doc) == doc["query"]


def test_task_manager_missing_set_fails_only_when_selected(imhi_dir, tmp_path):
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=str(TASKS_YAML), include_defaults=False,
                     metadata={"imhi_data_dir": str(imhi_dir)})
    assert "imhi_swmh" in tm.all_subtasks  # the task exists even though its file does not
    tm.load(["imhi_dr"])
    with pytest.raises(ImhiError, match="swmh instruction file is missing: put it at"):
        tm.load(["imhi_swmh"])


def test_generate_script_check_passes():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "generate_tasks_yaml.py"),
                        "--check"], capture_output=True, text=True, env=dict(os.environ))
    assert r.returncode == 0, r.stdout + r.stderr
