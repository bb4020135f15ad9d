"""Baseline specs: keys, defaults, one-line errors, and the shipped specs."""

from __future__ import annotations

from pathlib import Path

import pytest

from imhi_bench.baselines.spec import BaselineSpec, field_docs, list_specs, load_spec
from imhi_bench.cli.main import main
from imhi_bench.core.errors import ImhiError
from imhi_bench.core.specfile import field_names

ROOT = Path(__file__).resolve().parents[1]
GEN = ["name=X", "model=m"]


def test_every_spec_key_is_documented_and_listed(capsys):
    assert set(field_docs()) == set(field_names(BaselineSpec))
    assert main(["baseline", "list", "--keys"]) == 0
    out = capsys.readouterr().out
    assert all(f"{k} (default" in out for k in field_names(BaselineSpec))


@pytest.mark.parametrize("overrides, message", [
    (["num_fewshots=2"], "unknown override key 'num_fewshots' (did you mean num_fewshot?)"),
    (["setting=few-shot"], "few-shot needs num_fewshot > 0"),
    (["num_fewshot=2"], "does not match num_fewshot=2"),
    (["type=closed"], "type is 'closed': use one of discriminative, API, base"),
    (["max_new_tokens=0"], "max_new_tokens must be at least 1"),
    (["training_data=reddit"], "training_data is 'reddit': use one of IMHI, IMHI-general, other"),
    (["train_file=/no/such.csv"], "train_file /no/such.csv does not exist"),
])
def test_bad_specs_are_one_line(overrides, message):
    with pytest.raises(ImhiError) as e:
        load_spec(None, [*GEN, *overrides])
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_generative_spec_needs_a_model_and_every_spec_a_name():
    with pytest.raises(ImhiError, match="needs model="):
        load_spec(None, ["name=X"])
    with pytest.raises(ImhiError, match="has no name"):
        load_spec(None, ["model=m"])
    spec = load_spec(None, [*GEN, "setting=few-shot", "num_fewshot=3", "type=API"])
    assert (spec.num_fewshot, spec.setting, spec.type) == (3, "few-shot", "API")
    assert spec.to_dict()["sets"] == ["imhi"]


def test_the_shipped_specs_load_and_pair_with_the_paper_rows():
    from imhi_bench.store.reported import REPORTED

    specs = {p.stem: s for p, s in list_specs(ROOT / "imhi_bench" / "baselines" / "specs")}
    reported = {(e["model"]["name"], e["setting"]) for e in REPORTED}
    for stem, spec in specs.items():
        if spec.name != "GPT-4":  # the paper reports no GPT-4 row
            setting = "" if spec.setting == "fine-tuned" else spec.setting
            assert (spec.name, setting) in reported, stem
        # recorded as the paper's row of the same name is: type and training data
        paper = [e["model"] for e in REPORTED if e["model"]["name"] == spec.name] or \
            [{"type": "API", "training_data": "other"}]  # GPT-4: as ChatGPT's
        fields = spec.model_fields()
        assert {(p["type"], p["training_data"]) for p in paper} == \
            {(fields["type"], fields["training_data"])}, stem
