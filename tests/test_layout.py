"""The package's shape: sub-packages along the data path, lower layers never importing
higher ones (import-linter), small modules, and one definition of each shared step."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "imhi_bench"
MAX_LINES = 420  # "no module over ~400 lines"


def _sources() -> dict[Path, str]:
    return {p: p.read_text("utf-8") for p in PACKAGE.rglob("*.py")
            if "migrations" not in p.parts}


def test_layers_contract_is_kept():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint is None:
        pytest.fail("lint-imports is not installed: pip install -e '.[dev]'")
    out = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "1 kept, 0 broken" in out.stdout


def test_the_contract_covers_every_sub_package():
    import tomllib

    layers = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
        "contracts"][0]["layers"]
    subpackages = {f"imhi_bench.{p.name}" for p in PACKAGE.iterdir()
                   if p.is_dir() and (p / "__init__.py").is_file()}
    assert subpackages == set(layers)
    # only the package's entry points live beside the sub-packages
    assert sorted(p.name for p in PACKAGE.glob("*.py")) == ["__init__.py", "__main__.py"]


def test_no_module_is_over_the_size_limit():
    long = {str(p.relative_to(ROOT)): text.count("\n") for p, text in _sources().items()
            if text.count("\n") > MAX_LINES}
    assert not long


@pytest.mark.parametrize("definition", [
    r"def score_run\(",  # the scoring pipeline
    r"def record_scored\(",  # the builder of the store record
    r"def write_run_folder\(",  # the run folder, written ...
    r"def load_predictions\(",  # ... and read
    r"^METRICS: tuple\[QualityMetric",  # the table of quality metrics
    r"def utcnow\(",
    r"^SAMPLES_GLOB\b",
])
def test_each_step_is_defined_once(definition):
    pattern = re.compile(definition, re.M)
    where = [str(p.relative_to(ROOT)) for p, text in _sources().items() if pattern.search(text)]
    assert len(where) == 1, where
