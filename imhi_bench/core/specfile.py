"""Frozen dataclasses read from YAML files plus `key=value` overrides: the training recipes
and the baseline specs.  One place for what both need: every field documented by the
docstring under it, values taken to the field's type, an unknown key named with the nearest
valid one, choices checked, and one line (ImhiError) for anything wrong."""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import math
import os
import typing
from pathlib import Path
from typing import Any, TypeVar

from imhi_bench.core.errors import ImhiError, first_line

T = TypeVar("T")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def field_docs(cls: type) -> dict[str, str]:
    """Field name -> the docstring under it in the class source (one place for both)."""
    body = ast.parse(inspect.getsource(cls)).body[0].body
    docs = {}
    for node, nxt in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)):
            docs[node.target.id] = " ".join(str(nxt.value.value).split())
    return docs


def nearest(key: str, names: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.5)
    return f" (did you mean {close[0]}?)" if close else ""


def _base_type(annotation: Any) -> tuple[type, bool]:
    """(the type a field holds, whether it may be None) from its annotation."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    optional = len(args) < len(typing.get_args(annotation))
    if typing.get_origin(annotation) is tuple:
        return tuple, False
    return (args[0] if args else annotation), optional


def coerce(what: str, name: str, value: Any, annotation: Any) -> Any:
    """A YAML value as the field's type; one line naming the key when it does not fit."""
    kind, optional = _base_type(annotation)
    key = f"{what} key {name}"
    if value is None:
        if optional:
            return None
        raise ImhiError(f"{key} cannot be empty: give a value")
    if kind is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)) or not value:
            raise ImhiError(f"{key} must be a list, e.g. {name}=a,b")
        return tuple(str(v) for v in value)
    if kind is bool:
        word = str(value).strip().lower()
        if isinstance(value, bool) or word in _TRUE | _FALSE:
            return value if isinstance(value, bool) else word in _TRUE
        raise ImhiError(f"{key} must be true or false, not {value!r}")
    if kind in (int, float):
        try:
            number = float(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is not None and not math.isfinite(number):  # .nan, .inf: no step count
            raise ImhiError(f"{key} must be a finite number, not {value!r}")
        if number is None or (kind is int and number != int(number)):
            raise ImhiError(f"{key} must be {'an integer' if kind is int else 'a number'}, "
                            f"not {value!r}")
        return kind(number)
    if isinstance(value, (dict, list)):
        raise ImhiError(f"{key} must be text, not {value!r}")
    return str(value)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`key=value` words -> {key: YAML value}."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ImhiError(f"override {item!r} is not key=value: write e.g. max_steps=300")
        if key.strip() in out:  # which of the two was meant cannot be told
            raise ImhiError(f"override key {key.strip()!r} is given twice: keep one")
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


class DuplicateKey(ValueError):
    """A YAML mapping names one key twice (PyYAML would keep the last without a word)."""


def _unique_loader():
    """A safe YAML loader that refuses a key given twice in one mapping."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen: set = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if isinstance(key, str) and key in seen:
                    raise DuplicateKey(f"key {key!r} is given twice (line "
                                       f"{key_node.start_mark.line + 1})")
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


def read_mapping(path: str | os.PathLike, what: str, hint: str) -> dict[str, Any]:
    """A YAML file holding one mapping (empty file: {}); a key given twice is refused."""
    import yaml

    p = Path(path).expanduser()
    if p.is_dir():
        raise ImhiError(f"{what} {path} is a folder, not a YAML file: pass {hint}")
    if not p.is_file():
        raise ImhiError(f"{what} {path} does not exist: pass {hint}")
    try:
        text = p.read_text("utf-8")
    except UnicodeDecodeError as e:
        raise ImhiError(f"{what} {path} is not UTF-8 text (bad byte at offset {e.start}): "
                        "re-save it as UTF-8") from None
    except OSError as e:
        raise ImhiError(f"cannot read {what} {path} ({e.strerror or first_line(e)}): check "
                        "the file and its permissions") from None
    try:
        loaded = yaml.load(text, Loader=_unique_loader())  # noqa: S506 - a SafeLoader
    except DuplicateKey as e:
        raise ImhiError(f"{what} {path}: {e}: keep one") from None
    except yaml.YAMLError as e:
        raise ImhiError(f"{what} {path} is not readable YAML ({first_line(e)}): fix the "
                        "file") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ImhiError(f"{what} {path} must be a mapping of keys to values")
    return loaded


def build(cls: type[T], values: dict[str, Any], *, what: str, where: str, help_hint: str,
          choices: dict[str, tuple[str, ...]] | None = None) -> T:
    """An instance of the frozen dataclass `cls` from a mapping of its keys; `choices`
    lists the allowed (lower-case) values of the keys that have a fixed set."""
    names = field_names(cls)
    for k in values:
        if k not in names:
            raise ImhiError(f"unknown {where} key {k!r}{nearest(k, names)}: {help_hint}")
    hints = typing.get_type_hints(cls)
    kwargs = {k: coerce(what, k, v, hints[k]) for k, v in values.items()}
    for k, allowed in (choices or {}).items():
        if k in kwargs and kwargs[k] is not None:
            kwargs[k] = str(kwargs[k]).lower() if all(a == a.lower() for a in allowed) \
                else str(kwargs[k])
            if kwargs[k] not in allowed:
                raise ImhiError(f"{what} key {k} is {values[k]!r}: use one of "
                                f"{', '.join(allowed)}")
    return cls(**kwargs)


def shipped_names(folder: Path) -> list[str]:
    """The names of the YAML files shipped in `folder` (inside the package)."""
    return sorted(p.stem for p in folder.glob("*.yaml"))


def shipped_path(path: str | os.PathLike | None, folder: Path | None
                 ) -> str | os.PathLike | None:
    """`path` itself when it is a file (a path always works), else the file shipped in
    `folder` that it names (`mentalbart` or `mentalbart.yaml`), else `path` unchanged (for
    `read_mapping` to say it does not exist)."""
    if path is None or folder is None or Path(path).expanduser().exists():
        return path
    name = str(path)
    if "/" in name or os.sep in name:
        return path
    file = folder / (name if name.endswith((".yaml", ".yml")) else f"{name}.yaml")
    return file if file.is_file() else path


def load(cls: type[T], path: str | os.PathLike | None, overrides: list[str] | None, *,
         what: str, hint: str, help_hint: str,
         choices: dict[str, tuple[str, ...]] | None = None, shipped: Path | None = None) -> T:
    """The file at `path` (optional; or the name of a file shipped in `shipped`) with
    `key=value` overrides applied, as `cls`."""
    if shipped is not None and path is not None:
        found = shipped_path(path, shipped)
        if found is path and not Path(path).expanduser().exists():
            names = shipped_names(shipped)
            close = nearest(Path(str(path)).stem, tuple(names))
            raise ImhiError(f"{what} {path} does not exist{close}: pass {hint}; the "
                            f"shipped {what}s: {', '.join(names)}")
        path = found
    values = read_mapping(path, what, hint) if path is not None else {}
    over = parse_overrides(overrides or [])
    names = field_names(cls)
    for k in over:
        if k not in names:
            raise ImhiError(f"unknown override key {k!r}{nearest(k, names)}: {help_hint}")
    values.update(over)
    return build(cls, values, what=what, where=f"{what} {path}" if path else what,
                 help_hint=help_hint, choices=choices)


def to_dict(obj: Any) -> dict:
    """A spec's fields as plain YAML/JSON values (tuples as lists)."""
    return {f.name: (list(v) if isinstance(v := getattr(obj, f.name), tuple) else v)
            for f in dataclasses.fields(obj)}
