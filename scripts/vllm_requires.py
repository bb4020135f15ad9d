"""The GPU set (constraints/gpu.txt) and the pinned vLLM's declared requirements (issue 26).

    python scripts/vllm_requires.py          # rewrite constraints/vllm-<pinned>-requires.txt
                                             # from the release's own metadata (pip, PyPI)
    python scripts/vllm_requires.py --check  # offline: exit 1 naming each pin that disagrees

The check (tests/test_gpu_constraints.py runs it) holds every pin of constraints/gpu.txt
against pyproject's dependencies and extras and against the pinned vLLM's Requires-Dist,
markers evaluated where the GPU set is installed (Linux x86-64, CPython 3.11 and 3.12).
The vendored file keeps only the requirements that name a package pinned or depended on
here, so the check runs without network.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import tomllib
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]
GPU_SET = ROOT / "constraints" / "gpu.txt"
PYPROJECT = ROOT / "pyproject.toml"
PROJECT = "imhi-bench"
GPU_ONLY = "gpu-only"  # the mark on a pin that the CPU venv (.venv-gpuset) leaves out
# what the GPU set must pin, and which of those have no CPU build
REQUIRED = ("vllm", "torch", "transformers", "lm-eval", "trl", "peft", "accelerate",
            "flash-attn")
GPU_ONLY_NAMES = {"vllm", "flash-attn"}
TARGETS = ("3.11", "3.12")  # vLLM's wheels need CPython >= 3.11; Linux x86-64 machines


class Pin(NamedTuple):
    name: str
    version: str
    gpu_only: bool


class VllmRequires(NamedTuple):
    python: SpecifierSet
    requires: list[Requirement]
    looked_for: set[str]  # the names whose lines were kept (a pin outside them: regenerate)


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def target_env(python: str, extra: str = "") -> dict[str, str]:
    env = default_environment()
    env.update(python_version=python, python_full_version=f"{python}.0", os_name="posix",
               sys_platform="linux", platform_system="Linux", platform_machine="x86_64",
               implementation_name="cpython", platform_python_implementation="CPython",
               extra=extra)
    return env


def read_pins(text: str) -> list[Pin]:
    """The `name==version` lines of a pip constraints file; anything else is an error."""
    pins = []
    for raw in text.splitlines():
        line, _, comment = raw.partition("#")
        if not line.strip():
            continue
        req = Requirement(line.strip())
        specs = list(req.specifier)
        if len(specs) != 1 or specs[0].operator != "==" or "*" in specs[0].version:
            raise ValueError(f"{raw.strip()!r}: the GPU set pins exact versions (name==X)")
        pins.append(Pin(norm(req.name), specs[0].version, GPU_ONLY in comment))
    return pins


def project_requirements(pyproject_text: str) -> list[tuple[str, Requirement]]:
    """(extra, requirement) for the dependencies ("") and every extra, self-references out."""
    project = tomllib.loads(pyproject_text)["project"]
    out = [("", Requirement(r)) for r in project["dependencies"]]
    for extra, reqs in project.get("optional-dependencies", {}).items():
        out += [(extra, Requirement(r)) for r in reqs if norm(Requirement(r).name) != PROJECT]
    return out


def read_vllm_requires(text: str) -> VllmRequires:
    """The vendored file: `Requires-Python:` and `Requires-Dist:` lines, as in METADATA, and
    `Looked-For:`, the names its lines were kept for."""
    out = VllmRequires(SpecifierSet(), [], set())
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key == "Requires-Python":
            out = out._replace(python=SpecifierSet(value.strip()))
        elif key == "Requires-Dist":
            out.requires.append(Requirement(value.strip()))
        elif key == "Looked-For":
            out.looked_for.update(value.split())
    return out


def problems(pins: list[Pin], project: list[tuple[str, Requirement]],
             vllm: VllmRequires) -> list[str]:
    """One line for each way the pins disagree with the package or the pinned vLLM."""
    out = []
    vllm_python, vllm_reqs = vllm.python, vllm.requires
    names = [p.name for p in pins]
    out += [f"{n} is pinned twice" for n in sorted({n for n in names if names.count(n) > 1})]
    out += [f"the GPU set pins no {n}" for n in REQUIRED if n not in names]
    for python in TARGETS:
        if not vllm_python.contains(f"{python}.0"):
            out.append(f"the pinned vLLM needs Python {vllm_python}, not {python}")
    known = {norm(r.name) for _, r in project} | {norm(r.name) for r in vllm_reqs}
    for pin in pins:
        if pin.gpu_only != (pin.name in GPU_ONLY_NAMES):
            out.append(f"{pin.name}: mark it {GPU_ONLY!r} exactly when it has no CPU build "
                       f"({', '.join(sorted(GPU_ONLY_NAMES))})")
        if pin.name not in vllm.looked_for:
            out.append(f"{pin.name}: the vendored vLLM requirements were not read for it: run "
                       "python scripts/vllm_requires.py")
        if pin.name not in known:
            out.append(f"{pin.name}=={pin.version}: neither this package nor vLLM needs it")
        for extra, req in project:
            if norm(req.name) == pin.name and not req.specifier.contains(pin.version, True):
                where = f"extra [{extra}]" if extra else "dependencies"
                out.append(f"{pin.name}=={pin.version} is outside pyproject's {where}: {req}")
        for req in vllm_reqs:
            if norm(req.name) != pin.name or req.specifier.contains(pin.version, True):
                continue
            if req.marker is None or any(req.marker.evaluate(target_env(p)) for p in TARGETS):
                out.append(f"{pin.name}=={pin.version} is outside the pinned vLLM's "
                           f"requirement {req}")
    return out


def vllm_pin(pins: list[Pin]) -> str | None:
    return next((p.version for p in pins if p.name == "vllm"), None)


def requires_file(version: str) -> Path:
    return ROOT / "constraints" / f"vllm-{version}-requires.txt"


def check() -> list[str]:
    pins = read_pins(GPU_SET.read_text("utf-8"))
    version = vllm_pin(pins)
    if version is None:
        return ["the GPU set pins no vllm"]
    path = requires_file(version)
    if not path.is_file():
        return [f"no {path.relative_to(ROOT)}: run python scripts/vllm_requires.py"]
    vllm = read_vllm_requires(path.read_text("utf-8"))
    return problems(pins, project_requirements(PYPROJECT.read_text("utf-8")), vllm)


def fetch_metadata(version: str) -> dict:
    """The release's core metadata as pip reads it from the wheel (PyPI's own copy)."""
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps",
                        "--ignore-installed", "--only-binary=:all:", "--quiet", "--report", "-",
                        f"vllm=={version}"], capture_output=True, text=True, check=True)
    (item,) = json.loads(r.stdout)["install"]
    return item["metadata"]


def render(version: str, metadata: dict, names: set[str]) -> str:
    keep = [r for r in metadata.get("requires_dist", []) if norm(Requirement(r).name) in names]
    head = [f"# vLLM {version}'s declared requirements (Requires-Python and the Requires-Dist",
            "# lines that name a package constraints/gpu.txt pins or pyproject.toml names),",
            "# read from the release's wheel metadata on PyPI by",
            "#   python scripts/vllm_requires.py",
            "# Do not edit: tests/test_gpu_constraints.py checks the GPU set against it offline.",
            f"Requires-Python: {metadata.get('requires_python') or ''}",
            f"Looked-For: {' '.join(sorted(names))}"]
    return "\n".join(head + [f"Requires-Dist: {r}" for r in keep]) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="check the pins (offline)")
    args = p.parse_args()
    if args.check:
        found = check()
        for line in found:
            print(f"constraints/gpu.txt: {line}", file=sys.stderr)
        return 1 if found else 0
    pins = read_pins(GPU_SET.read_text("utf-8"))
    version = vllm_pin(pins)
    if version is None:
        print("constraints/gpu.txt pins no vllm", file=sys.stderr)
        return 1
    names = {p.name for p in pins} | {
        norm(r.name) for _, r in project_requirements(PYPROJECT.read_text("utf-8"))}
    path = requires_file(version)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(render(version, fetch_metadata(version), names), "utf-8")
    tmp.replace(path)
    print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
