"""Bad input, swept across the commands: every class of mistake ends as exactly one line
`imhi-bench: error: ...` on stderr naming the problem (exit 2, or the command's documented
code), with no traceback, and nothing written or recorded.

Each case runs `main` in-process in a private folder that also holds the default store,
submissions dir and generation cache ($IMHI_DB_URL, $IMHI_SUBMISSIONS_DIR, $IMHI_CACHE_DIR),
and that folder must be byte-for-byte the same afterwards: no store created, no row
recorded, no result file, manifest or run folder left behind.  The classes: data files,
prediction files, options, store URLs and files, submit, status, worker.  Then closed pipes
(`... | head -1`), which need a real process."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from imhi_bench.benchmark.data import load_examples
from imhi_bench.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
SHARED_IMHI = Path(os.environ["IMHI_DATA_DIR"])
DR_FILE = Path("test_data") / "test_instruction" / "DR.csv"
GENERIC = "(run with --debug"  # what main adds to an error nothing handled specifically


# --------------------------------------------------------------------------- the folder


class Ctx:
    """A case's private folder and what it may build there."""

    def __init__(self, root: Path, llama: Callable[[], Path]):
        self.root = root
        self._llama = llama
        self.db = root / "store.sqlite"

    def p(self, *parts: str) -> str:
        return str(self.root.joinpath(*parts))

    @property
    def llama(self) -> str:
        return str(self._llama())

    def folder(self, name: str) -> str:
        (self.root / name).mkdir(parents=True)
        return self.p(name)

    def file(self, name: str, data: bytes | str) -> str:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return str(path)

    def dr_rows(self, n: int = 4) -> list:
        return load_examples("DR", "instruction", SHARED_IMHI)[:n]

    def preds_csv(self, name: str = "preds/DR.csv", *, header=("goldens", "generated_text"),
                  tail: bytes = b"") -> str:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(header)
            for e in self.dr_rows():
                w.writerow([e.gold, e.gold])
        with open(path, "ab") as f:
            f.write(tail)
        return str(path.parent)

    def samples(self, last: bytes, name: str = "run/samples_imhi_dr.jsonl") -> str:
        good = "".join(json.dumps({"doc_id": i, "doc": {"gold": e.gold, "set": "DR"},
                                   "resps": [[e.gold]], "filtered_resps": [e.gold]}) + "\n"
                       for i, e in enumerate(self.dr_rows(2))).encode()
        self.file(name, good + last + b"\n")
        return str((self.root / name).parent)

    def data_dir(self, dr: bytes | None) -> str:
        """A data dir holding only DR's instruction file (`dr`), or nothing (None)."""
        folder = self.root / "data"
        folder.mkdir()
        if dr is not None:
            self.file(str(Path("data") / DR_FILE), dr)
        return str(folder)

    def store(self, damage: str) -> str:
        """A store file that is not a database (`random`) or a truncated one."""
        path = self.root / "bad.sqlite"
        if damage == "random":
            path.write_bytes(hashlib.sha256(b"x").digest() * 200)
        else:
            from imhi_bench.store.engine import open_store

            good = self.root.parent / f"good-{uuid.uuid4().hex[:6]}.sqlite"
            engine = open_store(str(good)).kw["bind"]
            engine.dispose()
            path.write_bytes(good.read_bytes()[:3000])
        return str(path)

    def pending(self) -> str:
        """A PENDING submission in the default store (a worker must not claim it)."""
        import datetime as dt

        from imhi_bench.store.engine import open_store
        from imhi_bench.store.tables import Submission

        factory = open_store(str(self.db))
        with factory.begin() as s:
            s.add(Submission(
                id="waiting-0123456789", name="waiting", model="/models/waiting",
                revision="sha256:" + "0" * 64, precision="fp32", backend="hf", adapter="",
                adapter_revision="", dedupe_key="k" * 64, needs_remote_code=False,
                allow_pickle=False, status="PENDING", attempts=0,
                submitted=dt.datetime(2026, 1, 1)))
        factory.kw["bind"].dispose()
        return "waiting-0123456789"


def snapshot(root: Path) -> dict[str, str]:
    """Every entry under `root` with its content hash: what "nothing written" compares.
    SQLite's shared-memory index, and an empty write-ahead log, are what reading a store in
    WAL mode leaves: not writes (a write shows in the log or the file)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if rel.endswith("-shm") or (rel.endswith("-wal") and path.stat().st_size == 0):
            continue
        if path.is_symlink() or not path.is_file():
            out[rel] = "dir" if path.is_dir() else "other"
        else:
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


# --------------------------------------------------------------------------- the cases


@dataclass
class Case:
    argv: Callable[[Ctx], list[str]]
    message: str  # in the error line (for code 2), or in the report (a documented code)
    code: int = 2
    pending: bool = False  # a PENDING submission in the default store first


def score(predictions: str, *extra: str, ctx: Ctx) -> list[str]:
    return ["score", "--predictions", predictions, "--json", ctx.p("out", "r.json"),
            "--name", "m", *extra]


def eval_(ctx: Ctx, *extra: str) -> list[str]:
    return ["eval", "--model", ctx.llama, "--tasks", "imhi_dr", "--limit", "2",
            "--max-new-tokens", "2", "--output", ctx.p("run"), *extra]


def csv_bytes(text: str) -> bytes:
    return text.encode()


def truncated_dr() -> bytes:
    data = (SHARED_IMHI / DR_FILE).read_bytes()
    return data[: len(data) // 3]  # cut inside a quoted post


def on_store(argv: Callable[[Ctx], list[str]], damage: str) -> Callable[[Ctx], list[str]]:
    """`argv` with --db a damaged store file."""
    return lambda c: [*argv(c), "--db", c.store(damage)]


CASES: dict[str, Case] = {
    # -- data files
    "eval: --data-dir missing": Case(
        lambda c: eval_(c, "--data-dir", c.p("nowhere")), "IMHI DR instruction file is missing"),
    "eval: --data-dir is a file": Case(
        lambda c: eval_(c, "--data-dir", c.file("plain", "x")), "file is missing"),
    "eval: truncated data csv": Case(
        lambda c: eval_(c, "--data-dir", c.data_dir(truncated_dr())), "is not a valid CSV"),
    "eval: data csv with wrong columns": Case(
        lambda c: eval_(c, "--data-dir", c.data_dir(b"post,answer\nhi,yes\n")),
        "lacks column(s) 'query', 'gpt-3.5-turbo'"),
    "eval: empty data csv": Case(
        lambda c: eval_(c, "--data-dir", c.data_dir(b"")), "is empty"),
    "worker: --data-dir missing": Case(
        lambda c: ["worker", "--once", "--data-dir", c.p("nowhere")], "no data for any task"),
    "data check: truncated data csv (exit 1, a report)": Case(
        lambda c: ["data", "check", "--sets", "DR", "--formats", "instruction", "--data-dir",
                   c.data_dir(truncated_dr())], "FAILED: 0 of 1 files", code=1),
    # -- prediction files
    "score: non-UTF-8 csv": Case(
        lambda c: score(c.preds_csv(tail=b"\xff\xfe,x\n"), ctx=c), "is not UTF-8"),
    "score: non-UTF-8 jsonl": Case(
        lambda c: score(c.samples(b'{"doc": {"gold": "caf\xe9"}}'), ctx=c),
        "samples_imhi_dr.jsonl:3 is not UTF-8 text"),
    "score: bad JSON line": Case(
        lambda c: score(c.samples(b'{"doc": {"gold": '), ctx=c),
        "samples_imhi_dr.jsonl:3 is not valid JSON"),
    "score: doc.set a number": Case(
        lambda c: score(c.samples(b'{"doc": {"gold": "yes", "set": 5}}'), ctx=c),
        "samples_imhi_dr.jsonl:3: doc.set is 5, not a set name"),
    "score: doc.set a list": Case(
        lambda c: score(c.samples(b'{"doc": {"gold": "yes", "set": ["DR"]}}'), ctx=c),
        'samples_imhi_dr.jsonl:3: doc.set is ["DR"], not a set name'),
    "score: doc not an object": Case(
        lambda c: score(c.samples(b'{"doc": [1]}'), ctx=c),
        'samples_imhi_dr.jsonl:3: "doc" is a JSON array'),
    "score: unknown set in doc.set": Case(
        lambda c: score(c.samples(b'{"doc": {"gold": "yes", "set": "XYZ"}}'), ctx=c),
        "unknown IMHI set 'XYZ'"),
    "score: unknown set as file name": Case(
        lambda c: score(c.preds_csv("preds/depression.csv"), ctx=c), "must be an IMHI set name"),
    "score: empty folder": Case(
        lambda c: score(c.folder("empty"), ctx=c),
        "holds no prediction files"),
    "score: missing column": Case(
        lambda c: score(c.preds_csv(header=("goldens", "output")), ctx=c),
        "lacks column(s) 'generated_text'"),
    "score: missing predictions": Case(
        lambda c: score(c.p("nope"), ctx=c), "does not exist"),
    "score: empty jsonl": Case(
        lambda c: score(c.file("run/samples_imhi_dr.jsonl", ""), ctx=c), "is empty"),
    "score: truncated csv": Case(
        lambda c: score(c.preds_csv(tail=b'"an unfinished, quoted\n'), ctx=c),
        "is not a valid CSV"),
    # -- options
    "score: negative --bootstrap": Case(
        lambda c: score(c.preds_csv(), "--bootstrap", "-1", ctx=c), "--bootstrap -1"),
    "score: empty --name": Case(
        lambda c: score(c.preds_csv(), "--name", "", ctx=c), "--name is empty"),
    "score: --json under a file": Case(
        lambda c: score(c.preds_csv(), "--json", c.file("plain", "x") + "/r.json", ctx=c),
        "plain is a file, not a folder"),
    "score: --json a folder": Case(
        lambda c: score(c.preds_csv(), "--json", c.p("preds"), ctx=c), "is a folder"),
    "score: --json in /proc": Case(
        lambda c: score(c.preds_csv(), "--json", "/proc/imhi-r.json", ctx=c),
        "cannot create files in /proc"),
    "score: bad --db URL": Case(
        lambda c: score(c.preds_csv(), "--db", "nosuch://x", ctx=c), "unknown database kind"),
    "status: bad --db URL": Case(
        lambda c: ["status", "--db", "nosuch://x"], "unknown database kind"),
    "db init: bad --db URL": Case(
        lambda c: ["db", "init", "--db", "nosuch://x"], "unknown database kind"),
    "db upgrade: malformed --db URL": Case(
        lambda c: ["db", "upgrade", "--db", "sqlite://x/y:z:"], "cannot read the store URL"),
    "db upgrade: --db URL with a bad port": Case(
        lambda c: ["db", "upgrade", "--db", "postgresql://u:secret@h:x:y/db"],
        "cannot read the store URL"),
    "worker: bad --db URL": Case(
        lambda c: ["worker", "--once", "--db", "nosuch://x"], "unknown database kind"),
    "submit: bad --db URL": Case(
        lambda c: ["submit", "--model", c.llama, "--name", "m", "--db", "nosuch://x"],
        "unknown database kind"),
    "status: --db under a file": Case(
        lambda c: ["status", "--db", c.file("plain", "x") + "/s.sqlite"],
        "cannot create the store's folder"),
    "cache info: --cache-dir a file": Case(
        lambda c: ["cache", "info", "--cache-dir", c.file("plain", "x")],
        "is a file, not a folder"),
    "cache prune: negative --older-than": Case(
        lambda c: ["cache", "prune", "--older-than", "-1"], "--older-than"),
    # -- store files
    **{f"{command}: {damage} store file": Case(on_store(argv, damage), "is damaged")
       for damage in ("random", "truncated")
       for command, argv in (
           ("score", lambda c: score(c.preds_csv(), ctx=c)),
           ("status", lambda c: ["status"]),
           ("db init", lambda c: ["db", "init"]),
           ("db upgrade", lambda c: ["db", "upgrade"]),
           ("submit", lambda c: ["submit", "--model", c.llama, "--name", "m"]),
           ("worker", lambda c: ["worker", "--once"]),
       )},
    # -- submit
    "submit: missing model path": Case(
        lambda c: ["submit", "--model", c.p("no-model"), "--name", "m"], "no such folder"),
    "submit: bad name": Case(
        lambda c: ["submit", "--model", c.llama, "--name", "../x"], "contains '/'"),
    "submit: empty name": Case(
        lambda c: ["submit", "--model", c.llama, "--name", ""], "--name is empty"),
    "submit: bad precision": Case(
        lambda c: ["submit", "--model", c.llama, "--name", "m", "--precision", "fp8"],
        "--precision 'fp8'"),
    "submit: bad backend": Case(
        lambda c: ["submit", "--model", c.llama, "--name", "m", "--backend", "openai-chat"],
        "--backend 'openai-chat'"),
    # -- status
    "status: unknown id": Case(
        lambda c: ["status", "nope"], "no submission 'nope'", pending=True),
    "status --json: unknown id": Case(
        lambda c: ["status", "--json", "nope"], "no submission 'nope'", pending=True),
    # -- worker (a PENDING job waits: none of these may claim it)
    "worker: unknown task": Case(
        lambda c: ["worker", "--once", "--tasks", "imhi_nope"], "unknown task 'imhi_nope'",
        pending=True),
    "worker --drain: unknown task": Case(
        lambda c: ["worker", "--drain", "--tasks", "imhi_dr,nope"], "unknown task 'nope'",
        pending=True),
    "worker: --limit 0": Case(
        lambda c: ["worker", "--once", "--limit", "0"], "--limit must be", pending=True),
    "worker: negative --limit": Case(
        lambda c: ["worker", "--drain", "--limit", "-2"], "--limit must be", pending=True),
    "worker: negative --bootstrap": Case(
        lambda c: ["worker", "--once", "--bootstrap", "-1"], "--bootstrap -1", pending=True),
    "worker: --requeue unknown id": Case(
        lambda c: ["worker", "--requeue", "nope"], "no submission 'nope'", pending=True),
}


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory) -> Callable[[], Path]:
    """The tiny Llama, built on first use (most cases need no model)."""
    built: list[Path] = []

    def get() -> Path:
        if not built:
            from tiny_models import build_tiny_llama

            built.append(build_tiny_llama(tmp_path_factory.mktemp("sweep-llama")))
        return built[0]

    return get


@pytest.fixture
def ctx(tmp_path, monkeypatch, llama_dir) -> Ctx:
    root = tmp_path / "case"
    root.mkdir()
    monkeypatch.chdir(root)
    monkeypatch.setenv("IMHI_DB_URL", f"sqlite:///{root / 'store.sqlite'}")
    monkeypatch.setenv("IMHI_SUBMISSIONS_DIR", str(root / "submissions"))
    monkeypatch.setenv("IMHI_CACHE_DIR", str(root / "cache"))
    monkeypatch.delenv("IMHI_DEBUG", raising=False)
    return Ctx(root, llama_dir)


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_and_leaves_nothing(name, ctx, capsys):
    case = CASES[name]
    if case.pending:
        ctx.pending()
    argv = case.argv(ctx)
    before = snapshot(ctx.root)
    capsys.readouterr()
    rc = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    assert rc == case.code, (rc, err)
    if case.code == 2:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1, err
        assert lines[0].startswith("imhi-bench: error: "), lines[0]
        assert GENERIC not in lines[0], f"not handled specifically: {lines[0]}"
        assert case.message in lines[0], lines[0]
    else:  # a report with its documented exit code
        assert case.message in out and not err.strip(), (out, err)
    assert snapshot(ctx.root) == before, "the command wrote or changed files"
    if ctx.db.exists():  # a store made by the case itself: the queue is untouched
        from imhi_bench.queue.jobs import list_submissions
        from imhi_bench.store.engine import open_store

        for row in list_submissions(open_store(str(ctx.db))):
            assert (row["status"], row["attempts"], row["worker"]) == ("PENDING", 0, None)


def test_the_sweep_covers_every_class():
    """The classes of issue 15's 141 cases each keep some cases here."""
    prefixes = {name.split(":")[0] for name in CASES}
    assert {"eval", "worker", "data check", "score", "status", "db init", "db upgrade",
            "cache info", "cache prune", "submit", "status --json", "worker --drain"} <= prefixes
    for needle in ("non-UTF-8", "bad JSON line", "doc.set", "unknown set", "empty folder",
                   "missing column", "--bootstrap", "empty --name", "bad --db URL",
                   "random store file", "truncated store file", "missing model path",
                   "bad precision", "unknown id", "unknown task", "--limit",
                   "truncated data csv", "wrong columns", "--data-dir missing"):
        assert any(needle in name for name in CASES), needle


# --------------------------------------------------------------------------- closed pipes


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("IMHI_DEBUG", None)
    env["IMHI_DB_URL"] = f"sqlite:///{tmp_path / 'pipe.sqlite'}"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _closed_pipe(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run the command with its stdout a pipe whose reader is already gone: its first write
    fails with EPIPE, deterministically (no race with how much `head` reads)."""
    proc = subprocess.Popen([sys.executable, "-m", "imhi_bench", *argv], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    return subprocess.CompletedProcess(argv, proc.returncode, "", err)


def _many_submissions(url: str, n: int) -> None:
    import datetime as dt

    from imhi_bench.store.engine import open_store
    from imhi_bench.store.tables import Submission

    factory = open_store(url)
    with factory.begin() as s:
        for i in range(n):
            s.add(Submission(
                id=f"sub{i:04d}-0123456789", name=f"sub{i:04d}", model="/models/" + "m" * 200,
                revision="sha256:" + "0" * 64, precision="fp32", backend="hf", adapter="",
                adapter_revision="", dedupe_key=f"{i:064d}", needs_remote_code=False,
                allow_pickle=False, status="PENDING", attempts=0,
                submitted=dt.datetime(2026, 1, 1) + dt.timedelta(seconds=i)))
    factory.kw["bind"].dispose()


def test_closed_pipes_end_quietly(tmp_path):
    env = _env(tmp_path)
    preds = Ctx(tmp_path, lambda: Path()).preds_csv()
    for argv in (["data", "check", "--data-dir", str(SHARED_IMHI)],
                 ["status", "--json"],
                 ["status"],
                 ["score", "--predictions", preds, "--bootstrap", "0"]):
        r = _closed_pipe(argv, env)
        assert "Traceback" not in r.stderr and "Error" not in r.stderr, (argv, r.stderr)
        assert r.stderr.strip() == "", (argv, r.stderr)
        assert r.returncode != 2, argv  # a closed pipe is not an error of the command


def test_head_1_of_a_long_listing(tmp_path):
    """`imhi-bench status --json | head -1` with more output than a pipe buffers."""
    env = _env(tmp_path)
    _many_submissions(env["IMHI_DB_URL"], 400)
    exe = shutil.which("bash")
    if exe is None:
        pytest.skip("needs bash")
    r = subprocess.run([exe, "-c", f"'{sys.executable}' -m imhi_bench status --json | head -1"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.stdout == "[\n"
    assert "Traceback" not in r.stderr and r.stderr.strip() == "", r.stderr
