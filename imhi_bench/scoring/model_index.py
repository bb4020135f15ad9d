"""A run's scores as the `model-index` block of a Hugging Face model card, which the Hub
renders as an evaluation table (`imhi-bench export RUN --model-index`).

One result per set and one for the mean, each with the three headline metrics; the source
names the protocol the numbers were made under, since they compare only within one.
"""

from __future__ import annotations

from collections.abc import Mapping

IMHI_URL = "https://github.com/SteveKGYang/MentalLLaMA"  # the benchmark's release
PAPER_URL = "https://arxiv.org/abs/2309.13567"  # where the paper's reported rows come from
TASK = {"type": "text-generation", "name": "Interpretable mental health analysis (IMHI)"}
# score JSON key -> (metric type, metric name) as the Hub reads them
METRICS = (("weighted_f1", "f1", "Weighted F1"), ("accuracy", "accuracy", "Accuracy"),
           ("macro_f1", "f1", "Macro F1"))


def _metrics(m: Mapping) -> list[dict]:
    out = []
    for key, kind, name in METRICS:
        value = m.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
            out.append({"type": kind, "value": round(float(value), 2), "name": name,
                        **({"args": {"average": key.split("_")[0]}} if kind == "f1" else {}),
                        "verified": False})
    return out


def source(protocol: Mapping | None, *, reference: str | None = None,
           partial: str | None = None) -> dict:
    """Where the numbers come from: the paper (a reported row), else imhi-bench under its
    protocol (id and name), and why the run is partial when it is."""
    from imhi_bench import __version__

    p = protocol or {}
    named = f"protocol {p['id']} ({p.get('name', '?')})" if p.get("id") else "protocol unknown"
    if reference:
        return {"name": f"{reference}; {named}", "url": PAPER_URL}
    name = f"imhi-bench {__version__}, {named}"
    if partial:
        name += f"; partial run ({partial}): not comparable with full test sets"
    return {"name": name, "url": IMHI_URL}


def model_index(model: str, sets: Mapping[str, Mapping], mean: Mapping | None,
                src: dict) -> dict:
    """{"model-index": [...]} for `model`: `sets` is set name -> its score JSON block (or a
    store set result), `mean` the mean block (None: left out), `src` from `source`."""
    results = []
    for name, m in sets.items():
        metrics = _metrics(m)
        if metrics:
            results.append({"task": dict(TASK),
                            "dataset": {"type": "imhi", "name": f"IMHI {name}",
                                        "config": name, "split": "test"},
                            "metrics": metrics, "source": dict(src)})
    if mean and len(sets) > 1 and (metrics := _metrics(mean)):
        count = mean.get("sets") or len(sets)
        results.append({"task": dict(TASK),
                        "dataset": {"type": "imhi", "name": f"IMHI (mean of {count} sets)",
                                    "config": "mean", "split": "test"},
                        "metrics": metrics, "source": dict(src)})
    return {"model-index": [{"name": model, "results": results}]}


def model_index_yaml(index: dict, comment: str = "") -> str:
    """The block as model-card front matter: YAML between `---` lines, `comment` (one
    line) a YAML comment at its top, so it travels with the numbers and changes nothing."""
    import yaml

    body = yaml.safe_dump(index, sort_keys=False, allow_unicode=True, width=1000)
    return "---\n" + (f"# {comment}\n" if comment else "") + f"{body}---\n"
