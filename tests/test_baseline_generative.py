"""Generative baselines through `imhi-bench baseline run`: ChatGPT few-shot against a local
OpenAI-compatible server that records the requests (demonstrations per request, never a
test post, the same draw for the same seed), the --yes guard, resuming from the generation
cache, one-line errors with nothing recorded, LLaMA2 zero-shot on a tiny local Llama, and the
leaderboard showing the reproduced baselines beside the paper's rows."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from fake_openai import serving
from sqlalchemy import select
from tiny_models import tiny_llama_dir, torch_threads

from imhi_bench.benchmark.data import load_examples, split_post
from imhi_bench.benchmark.sets import SET_NAMES
from imhi_bench.cli.main import main
from imhi_bench.core.errors import ImhiError
from imhi_bench.leaderboard.data import DEFAULT_COLUMNS
from imhi_bench.store.engine import open_store
from imhi_bench.store.tables import Run

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "imhi_bench" / "baselines" / "specs"
KEY = "sk-test-baseline-secret"
PREFIX = 'Consider this post: "'


@pytest.fixture()
def server():
    with serving() as start:
        yield start()


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    monkeypatch.setenv("IMHI_TEST_KEY", KEY)
    monkeypatch.setenv("IMHI_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture()
def db(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'store.sqlite'}"


def chatgpt(srv, out: Path, *extra: str, db: str | None = None) -> list[str]:
    """`baseline run` argv of the ChatGPT few-shot spec against the local server."""
    return ["baseline", "run", str(SPECS / "chatgpt-fewshot.yaml"), f"base_url={srv.url}",
            "api_key_env=IMHI_TEST_KEY", "max_new_tokens=16", *extra, "--output", str(out),
            *(["--db", db] if db else ["--no-db"])]


def runs_in(url: str) -> list[Run]:
    factory = open_store(url)
    with factory() as session:
        return list(session.scalars(select(Run).where(Run.source == "reproduced")))


def released_test_posts(imhi_dir) -> set[str]:
    """The post of every row of every released test file (test_data: every set, instruction
    and completion formats; the expert examples are no test set of these tasks)."""
    posts = set()
    for name in SET_NAMES:
        for fmt in ("instruction", "completion"):
            try:
                examples = load_examples(name, fmt, imhi_dir)
            except ImhiError:  # a set whose file is absent (SWMH, CLP)
                continue
            posts |= {" ".join(split_post(e.query)[1].split()) for e in examples}
    return posts


def demonstrations(request: dict) -> tuple[list[tuple[str, str]], str]:
    """([(post, what follows it)] of the demonstrations, the test post) of a chat request:
    the user message is demonstration queries each followed by its gold response, then the
    test query."""
    content = request["messages"][-1]["content"]
    assert content.startswith(PREFIX)
    parts = [PREFIX + p for p in content.split(PREFIX)[1:]]
    demos = [(" ".join(post.split()), after)
             for _, post, after in map(split_post, parts[:-1])]
    return demos, " ".join(split_post(parts[-1])[1].split())


def sent(srv) -> list[str]:
    return sorted(json.dumps(r["messages"], sort_keys=True) for r in srv.requests)


def test_chatgpt_fewshot_sends_k_demonstrations_never_a_test_post(server, tmp_path, db,
                                                                  imhi_dir, capsys):
    k, limit = 2, 2
    common = [f"num_fewshot={k}", f"limit={limit}", "--cache-dir"]
    rc = main(chatgpt(server, tmp_path / "a", *common, str(tmp_path / "c1"), db=db))
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "requests to gpt-3.5-turbo" in out and "prompt tokens" in out
    report = json.loads((tmp_path / "a" / "imhi_results.json").read_text())
    sets = list(report["sets"])
    assert len(sets) >= 8 and all(m["n"] == limit for m in report["sets"].values())
    assert len(server.requests) == limit * len(sets)
    first = sent(server)
    # the estimate printed before sending: characters / 4 of what was then sent
    chars = sum(len(m["content"]) for r in server.requests for m in r["messages"])
    assert f"about {math.ceil(chars / 4):,} prompt tokens" in out

    tests = released_test_posts(imhi_dir)
    queries = {" ".join(split_post(e.query)[1].split())
               for s in sets for e in load_examples(s, "instruction", imhi_dir)[:limit]}
    for req in server.requests:
        demos, post = demonstrations(req)
        assert len(demos) == k, req["messages"][-1]["content"][:200]
        assert post in queries
        assert not {p for p, _ in demos} & tests  # never a test post
        # each: its query's question, then its gold response (a label and its reasoning)
        assert all(" Question: " in a and "Reasoning:" in a for _, a in demos)

    # recorded as the paper's row is named, with the spec in the provenance
    (run,) = runs_in(db)
    assert (run.setting, run.backend) == ("few-shot", "openai-chat")
    assert run.provenance["baseline"]["num_fewshot"] == k
    assert run.provenance["baseline"]["name"] == "ChatGPT"
    assert KEY not in json.dumps(report) + out + err

    # the same seed, a fresh cache: the very same requests
    server.requests.clear()
    assert main(chatgpt(server, tmp_path / "b", *common, str(tmp_path / "c2"))) == 0
    assert sent(server) == first
    # another seed: other demonstrations
    server.requests.clear()
    assert main(chatgpt(server, tmp_path / "c", "fewshot_seed=7", *common,
                        str(tmp_path / "c3"))) == 0
    assert sent(server) != first and len(server.requests) == len(first)


def test_confirm_guard_resume_and_one_line_errors(server, tmp_path, db, capsys):
    base = ["tasks=imhi_dr,imhi_sad", "limit=1"]
    # above confirm_tokens without --yes: the size is printed, nothing is sent or recorded
    rc = main(chatgpt(server, tmp_path / "r", *base, "confirm_tokens=10", db=db))
    out, err = capsys.readouterr()
    assert rc == 2 and "2 requests" in out
    last = err.strip().splitlines()[-1]
    assert last.startswith("imhi-bench: error: ") and "--yes" in last and "confirm_tokens" in last
    assert server.requests == [] and not (tmp_path / "r").exists()
    assert main(["db", "init", "--db", db]) == 0 and runs_in(db) == []

    # with --yes it runs; a larger run then resumes from the generation cache
    assert main([*chatgpt(server, tmp_path / "r", *base, "confirm_tokens=10", db=db),
                 "--yes"]) == 0
    assert len(server.requests) == 2
    # (into a folder of its own: the first run's is recorded, and never replaced)
    assert main(chatgpt(server, tmp_path / "r2", "tasks=imhi_dr,imhi_sad", "limit=3")) == 0
    assert len(server.requests) == 2 + 4  # only the samples not generated before
    capsys.readouterr()

    # an API error after retries: one line, exit 2, nothing recorded
    with serving() as start:
        failing = start(failures=[500] * 100)
        rc = main(chatgpt(failing, tmp_path / "e", "tasks=imhi_dr,imhi_sad", "limit=2",
                                 db=db))
    err = capsys.readouterr().err
    assert rc == 2 and "answered HTTP 500 after 4 tries" in err.strip().splitlines()[-1]
    assert not (tmp_path / "e").exists() and len(runs_in(db)) == 1


@pytest.mark.parametrize("overrides, message", [
    (["num_fewshots=3"], "unknown override key 'num_fewshots' (did you mean num_fewshot?)"),
    (["model={broken}"], "cannot load model"),
])
def test_bad_input_is_one_line_and_records_nothing(tmp_path, db, capsys, overrides, message):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "llama"}')
    argv = ["baseline", "run", str(SPECS / "llama2-13b-zeroshot.yaml"),
            *[o.format(broken=broken) for o in overrides], "limit=1",
            "--output", str(tmp_path / "out"), "--db", db]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("imhi-bench: error: ") and message in err[-1]
    assert not (tmp_path / "out").exists()
    assert not Path(db.removeprefix("sqlite:///")).exists() or runs_in(db) == []


def test_baseline_list_shows_the_specs(capsys):
    assert main(["baseline", "list"]) == 0  # the shipped specs, by the names run takes
    out = capsys.readouterr().out
    assert main(["baseline", "list", "--dir", str(SPECS)]) == 0
    assert capsys.readouterr().out == out
    names = [line.split()[0] for line in out.splitlines()[2:]]
    assert names == sorted(p.stem for p in SPECS.glob("*.yaml"))
    assert {"chatgpt-fewshot", "chatgpt-zeroshot", "gpt4-fewshot", "llama2-13b-zeroshot",
            "mentalroberta"} <= set(names)
    assert "meta-llama/Llama-2-13b-hf" in out and "gpt-3.5-turbo" in out


def _mentalroberta(db: str, tmp_path: Path) -> None:
    """A reproduced MentalRoBERTa row from the discriminative runner, with a tiny BERT as the
    encoder, on a few DR posts."""
    from tiny_models import build_tiny_bert_classifier, cached

    encoder = cached("bert-2", build_tiny_bert_classifier, num_labels=2)
    with torch_threads(1):
        rc = main(["baseline", "run", str(SPECS / "mentalroberta.yaml"), f"encoder={encoder}",
                   "sets=DR", "epochs=1", "max_train=32", "limit=10", "max_length=64",
                   "batch_size=8", "--output", str(tmp_path / "roberta"), "--db", db])
    assert rc == 0


def test_llama2_zeroshot_and_the_leaderboard(server, tmp_path, db, url_env, capsys):
    from streamlit.testing.v1 import AppTest

    assert main(["db", "init", "--db", db]) == 0
    with torch_threads(1):
        rc = main(["baseline", "run", str(SPECS / "llama2-13b-zeroshot.yaml"),
                   f"model={tiny_llama_dir()}", "limit=2", "max_new_tokens=8",
                   "--output", str(tmp_path / "llama"), "--db", db])
    _, err = capsys.readouterr()
    assert rc == 0, err
    report = json.loads((tmp_path / "llama" / "imhi_results.json").read_text())
    assert set(report["sets"]) == {"CAMS", "dreaddit", "Irf", "t-sid"}
    generation = report["provenance"]["generation"]
    assert generation["chat_template"] is False and generation["do_sample"] is False  # greedy
    prompt = json.loads((tmp_path / "llama" / "samples_imhi_cams.jsonl").read_text()
                        .splitlines()[0])["prompt"]
    assert prompt == load_examples("CAMS")[0].query  # the raw query, as IMHI.py sends it
    assert main(chatgpt(server, tmp_path / "gpt", "tasks=imhi_dr,imhi_sad", "limit=2",
                        db=db)) == 0
    _mentalroberta(db, tmp_path)

    at = AppTest.from_file(str(ROOT / "leaderboard" / "app.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    at.sidebar.checkbox(key="partial").check().run()  # limit=N runs are partial: not ranked
    # each baseline beside the paper's row: every protocol (the paper's rows have their own)
    at.sidebar.selectbox(key="protocol").set_value("all").run()
    # the fields the grid folds into badges, as columns of their own
    at.sidebar.multiselect(key="columns").set_value(
        [*DEFAULT_COLUMNS, "source", "setting", "training data"]).run()
    for name, setting, trained in (("ChatGPT", "few-shot", "other"),
                                   ("LLaMA2-13B", "zero-shot", "other"),
                                   ("MentalRoBERTa", "fine-tuned", "IMHI")):
        at.text_input(key="search").set_value(name).run()
        table = at.dataframe[0].value
        rows = table[table["model"] == name]
        assert set(rows["source"]) == {"reported", "reproduced"}, name
        assert setting in set(rows[rows["source"] == "reproduced"]["setting"]), name
        # the spec's training data: the paper's row's, never "unknown"
        assert set(rows["training data"]) == {trained}, name


@pytest.fixture()
def url_env(db, monkeypatch) -> str:
    monkeypatch.setenv("IMHI_DB_URL", db)
    return db

