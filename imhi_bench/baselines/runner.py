"""Running a baseline spec: the spec's `runner` picks the code (imported only when used)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from imhi_bench.baselines.spec import BaselineSpec
from imhi_bench.core.lazy import resolve

RUNNERS = {
    "discriminative": "imhi_bench.baselines.discriminative:run_discriminative",
    "generative": "imhi_bench.baselines.generative:run_generative",
}


@dataclass
class BaselineRun:
    run_dir: Path
    report: dict  # the score JSON; its provenance holds the spec under "baseline"
    samples: dict  # set name -> scored samples (scoring.pipeline.Sample)


def run_spec(spec: BaselineSpec, *, output: Path, data_dir: str | None = None,
             cache_dir: str | None = None, yes: bool = False, log=print) -> BaselineRun:
    """Run, score and write the run folder of `spec` (the store is the caller's)."""
    return resolve(RUNNERS[spec.runner])(spec, output=Path(output), data_dir=data_dir,
                                         cache_dir=cache_dir, yes=yes, log=log)
