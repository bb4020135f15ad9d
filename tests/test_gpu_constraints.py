"""The GPU set (constraints/gpu.txt) agrees with pyproject and with the pinned vLLM's declared
requirements (issue 26), offline: scripts/vllm_requires.py holds the check, and the pinned
release's Requires-Dist is vendored beside the pins."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("vllm_requires",
                                               ROOT / "scripts" / "vllm_requires.py")
vr = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(vr)


def inputs(gpu_txt: str | None = None, pyproject: str | None = None):
    """The check's inputs: the committed files, or GPU_TXT / PYPROJECT in their place (the
    vendored requirements stay those of the committed pin)."""
    committed = vr.read_pins(vr.GPU_SET.read_text("utf-8"))
    pins = vr.read_pins(gpu_txt) if gpu_txt is not None else committed
    project = vr.project_requirements(pyproject or vr.PYPROJECT.read_text("utf-8"))
    vllm = vr.read_vllm_requires(vr.requires_file(vr.vllm_pin(committed)).read_text("utf-8"))
    return pins, project, vllm


def repin(name: str, version: str) -> str:
    """constraints/gpu.txt with NAME pinned at VERSION instead."""
    lines = vr.GPU_SET.read_text("utf-8").splitlines()
    out = [f"{name}=={version}" + (f"  #{ln.partition('#')[2]}" if "#" in ln else "")
           if vr.norm(ln.partition("==")[0]) == name else ln for ln in lines]
    assert out != lines, f"{name} is not pinned"
    return "\n".join(out) + "\n"


def test_the_gpu_set_agrees():
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "vllm_requires.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    pins, project, vllm = inputs()
    assert vr.problems(pins, project, vllm) == []
    # the vendored file is the pinned release's, and says what vLLM caps here
    assert {str(r) for r in vllm.requires if r.name in ("torch", "transformers")}
    assert vllm.python.contains("3.12.0")


@pytest.mark.parametrize("name,version,says", [
    # vLLM 0.32.0: transformers<5.20.0,>=5.16.1 and torch==2.13.0
    ("transformers", "5.20.0", "outside the pinned vLLM's requirement transformers"),
    ("torch", "2.14.0", "outside the pinned vLLM's requirement torch==2.13.0"),
    # pyproject's own bounds
    ("transformers", "5.10.0", "outside pyproject's dependencies: transformers>="),
    ("trl", "0.29.0", "outside pyproject's extra [train]: trl>="),
    ("vllm", "0.8.0", "outside pyproject's extra [vllm]"),
    ("flash-attn", "2.5.0", "outside pyproject's extra [flash]"),
])
def test_a_wrong_pin_is_named(name, version, says):
    pins, project, vllm = inputs(gpu_txt=repin(name, version))
    found = vr.problems(pins, project, vllm)
    assert any(f"{name}=={version}" in p and says in p for p in found), found


def test_bounds_that_exclude_a_pin_are_named():
    text = vr.PYPROJECT.read_text("utf-8")
    raised = text.replace('"transformers>=', '"transformers>=5.99,>=', 1)
    assert raised != text
    pins, project, vllm = inputs(pyproject=raised)
    found = vr.problems(pins, project, vllm)
    assert [p for p in found if p.startswith("transformers==")] == [
        f"transformers=={next(p.version for p in pins if p.name == 'transformers')} is outside "
        f"pyproject's dependencies: {next(r for _, r in project if r.name == 'transformers')}"]


def test_missing_marks_and_strays_are_named():
    text = vr.GPU_SET.read_text("utf-8")
    pins, project, vllm = inputs()
    no_torch = [p for p in pins if p.name != "torch"]
    assert "the GPU set pins no torch" in vr.problems(no_torch, project, vllm)
    unmarked = [p._replace(gpu_only=False) if p.name == "flash-attn" else p for p in pins]
    assert any(p.startswith("flash-attn: mark it 'gpu-only'")
               for p in vr.problems(unmarked, project, vllm))
    marked = [p._replace(gpu_only=True) if p.name == "torch" else p for p in pins]
    assert any(p.startswith("torch: mark it") for p in vr.problems(marked, project, vllm))
    stray = pins + [vr.Pin("left-pad", "1.0", False)]
    found = vr.problems(stray, project, vllm)
    assert "left-pad==1.0: neither this package nor vLLM needs it" in found
    assert any(p.startswith("left-pad: the vendored vLLM requirements were not read")
               for p in found)
    with pytest.raises(ValueError, match="exact versions"):
        vr.read_pins(text.replace("transformers==", "transformers>=", 1))


def test_markers_are_evaluated_for_linux_x86_64():
    pins, project, _ = inputs()
    vllm = vr.VllmRequires(vr.SpecifierSet(">=3.11"), [
        vr.Requirement('torch==0.1; platform_machine == "s390x"'),
        vr.Requirement('trl==0.1; extra == "bench"'),
        vr.Requirement('peft==0.1; python_version > "3.11"'),
    ], {p.name for p in pins})
    found = vr.problems(pins, project, vllm)
    assert [p.split("==")[0] for p in found] == ["peft"]  # s390x and the extra do not apply
    assert vr.problems(pins, project, vllm._replace(python=vr.SpecifierSet(">=3.12"))
                       )[0] == "the pinned vLLM needs Python >=3.12, not 3.11"


def test_the_cpu_set_is_the_gpu_set_less_its_gpu_only_lines():
    """scripts/install.sh --gpu-set-cpu drops the marked lines with grep: the same pins."""
    kept = subprocess.run(["grep", "-v", vr.GPU_ONLY, str(vr.GPU_SET)], capture_output=True,
                          text=True, check=True).stdout
    pins = vr.read_pins(vr.GPU_SET.read_text("utf-8"))
    assert vr.read_pins(kept) == [p for p in pins if not p.gpu_only]
    assert {p.name for p in pins if p.gpu_only} == vr.GPU_ONLY_NAMES
