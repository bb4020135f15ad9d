"""`imhi-bench data fetch` and fetch on first use, against local HTTP servers.

Files the manifest verifies by git blob id (SWMH's test files, the Irf/MultiWD train files)
are not in the shared copy, so those paths are tested on files made here under a manifest
standing in for the released one (`release.release_manifest` is looked up through the module).
"""

from __future__ import annotations

import functools
import http.server
import shutil
import socket
import threading

import pytest

from imhi_bench.benchmark import fetch as fetch_module
from imhi_bench.benchmark import release as release_module
from imhi_bench.benchmark.data import default_data_dir
from imhi_bench.benchmark.fetch import ensure_release
from imhi_bench.benchmark.release import git_blob_id, release_manifest, verify
from imhi_bench.cli.main import main
from imhi_bench.core.errors import ImhiError
from imhi_bench.core.fileio import sha256_file

CLOSED = "http://127.0.0.1:1/"  # nothing listens on port 1: refused at once


@pytest.fixture
def serve():
    """Serve a folder on 127.0.0.1; yields a function folder -> base URL."""
    servers = []

    def start(folder):
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
        handler.log_message = lambda *a, **k: None
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}/"

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def downloads(monkeypatch):
    """Record every URL `fetch` tries to download."""
    tried = []
    real = fetch_module._download

    def recording(url, *args):
        tried.append(url)
        return real(url, *args)

    monkeypatch.setattr(fetch_module, "_download", recording)
    return tried


def _csv(tag: str) -> bytes:
    return (f'query,gpt-3.5-turbo\n"Consider this post: ""{tag} post"" Question: x?",'
            f'"no. Reasoning: {tag}"\n').encode()


@pytest.fixture
def blob_release(tmp_path, monkeypatch):
    """A mirror folder and a manifest that verifies its files by git blob id, as the
    manifest does for the files recorded from the repository's tree."""
    files = {
        "test_data/test_instruction/swmh.csv": _csv("swmh"),
        "test_data/test_complete/swmh.csv": _csv("swmh complete"),
        "human_evaluation/test_instruction_expert/swmh.csv": _csv("swmh expert"),
        "train_data/instruction_data/Irf/train.csv": _csv("irf train"),
    }
    mirror = tmp_path / "mirror"
    for rel, content in files.items():
        (mirror / rel).parent.mkdir(parents=True, exist_ok=True)
        (mirror / rel).write_bytes(content)
    manifest = {rel: {"git_blob": git_blob_id(c)} for rel, c in files.items()}
    monkeypatch.setattr(release_module, "release_manifest", lambda: manifest)
    return mirror, files


@pytest.fixture
def fresh_user(tmp_path, monkeypatch):
    """A machine that has never run imhi-bench: no $IMHI_DATA_DIR, an empty per-user cache."""
    monkeypatch.delenv("IMHI_DATA_DIR", raising=False)
    monkeypatch.delenv("IMHI_DATA_BASE_URL", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = default_data_dir()
    assert root.is_relative_to(tmp_path)  # never the real user's cache
    return root


def test_manifest_records_the_files_of_the_pinned_commit_by_git_blob_id():
    manifest = release_manifest()
    assert {rel: meta["git_blob"] for rel, meta in manifest.items() if "git_blob" in meta} == {
        "test_data/test_instruction/swmh.csv": "273af1ab78e6bc844536208b354646f4efd49c72",
        "test_data/test_complete/swmh.csv": "f5f9888ec76f8700bd6a8366fbce25b97a7913d6",
        "train_data/instruction_data/Irf/train.csv": "c2d55b98441575feaaae05a9d4ebadd72c52ff58",
        "train_data/instruction_data/MultiWD/train.csv":
            "298b95e1b57beb2e438c3356e198d44c2253b7db",
        "train_data/complete_data/Irf/train.csv": "5696c3da4d232b3a10d236df313b04bac2635c34",
        "train_data/complete_data/MultiWD/train.csv": "230e8f7c2763854138e599aa88417b3cba2ec0dd",
    }
    # every entry is verified one way or the other, never both, never neither
    assert all(("sha256" in m) != ("git_blob" in m) for m in manifest.values())
    assert len(manifest) == 51


def test_verify_by_git_blob_id_and_by_sha256(tmp_path):
    # the ids `git hash-object` prints for these contents
    assert git_blob_id(b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
    assert git_blob_id(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"
    path = tmp_path / "f.csv"
    path.write_bytes(b"hello\n")
    blob = {"git_blob": "ce013625030ba8dba906f756967f9e9ca394464a"}
    assert verify(path, blob).ok and verify(b"hello\n", blob).ok
    bad = verify(b"hello!\n", blob)
    assert not bad.ok and bad.kind == "git blob id" and "the release has ce013625030b..." in \
        bad.describe()
    sha = {"sha256": sha256_file(path)}
    assert verify(path, sha).ok and not verify(b"hello", sha).ok
    assert verify(b"hello", sha).kind == "sha256"


def test_fetch_downloads_verifies_and_skips(imhi_dir, tmp_path, serve, capsys):
    base = serve(imhi_dir)
    dest = tmp_path / "data"
    args = ["data", "fetch", "--dest", str(dest), "--base-url", base, "--sets", "DR,SAD",
            "--formats", "instruction,expert", "--no-train"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "4 downloaded, 0 already present, 0 failed" in out
    assert out.rstrip().endswith("no model here may be used to screen, diagnose or treat anyone.")
    manifest = release_manifest()
    for rel in ("test_data/test_instruction/DR.csv",
                "human_evaluation/test_instruction_expert/SAD.csv"):
        assert sha256_file(dest / rel) == manifest[rel]["sha256"]
    assert not (dest / "test_data/test_complete").exists()
    assert main(args) == 0
    assert "0 downloaded, 4 already present" in capsys.readouterr().out
    # the fetched copy is a usable data dir
    assert main(["data", "check", "--data-dir", str(dest), "--sets", "DR", "--formats",
                 "instruction"]) == 0


def test_fetch_refuses_files_with_the_wrong_sha256(imhi_dir, tmp_path, serve, capsys):
    mirror = tmp_path / "mirror"
    shutil.copytree(imhi_dir / "test_data/test_instruction", mirror / "test_data/test_instruction")
    (mirror / "test_data/test_instruction/DR.csv").write_text("query,gpt-3.5-turbo\nx,y\n")
    dest = tmp_path / "data"
    rc = main(["data", "fetch", "--dest", str(dest), "--base-url", serve(mirror), "--sets",
               "DR,SAD", "--formats", "instruction", "--no-train"])
    out = capsys.readouterr().out
    assert rc == 1
    assert ("- not written: the downloaded sha256 differs from the release's (is --base-url "
            "the repository at commit 42cd29d?) (1 file: test_data/test_instruction/DR.csv)"
            ) in out
    assert not (dest / "test_data/test_instruction/DR.csv").exists()
    assert (dest / "test_data/test_instruction/SAD.csv").is_file()
    assert not list(dest.rglob("*.tmp"))


def test_fetch_verifies_git_blob_entries(blob_release, tmp_path, serve, capsys):
    mirror, files = blob_release
    tampered = "test_data/test_complete/swmh.csv"
    (mirror / tampered).write_bytes(files[tampered].replace(b"no.", b"yes."))
    dest = tmp_path / "data"
    args = ["data", "fetch", "--dest", str(dest), "--base-url", serve(mirror)]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "the downloaded git blob id differs from the release's" in out
    assert f"(1 file: {tampered})" in out
    assert "3 downloaded, 0 already present, 1 failed" in out
    assert not (dest / tampered).exists()
    for rel in ("test_data/test_instruction/swmh.csv",
                "train_data/instruction_data/Irf/train.csv"):
        assert (dest / rel).read_bytes() == files[rel]
    # present files are verified by the same check, and so are `data check`'s states
    assert main(args) == 1
    assert "0 downloaded, 3 already present, 1 failed" in capsys.readouterr().out
    (dest / "human_evaluation/test_instruction_expert/swmh.csv").write_bytes(_csv("edited"))
    rc = main(["data", "check", "--data-dir", str(dest), "--sets", "swmh"])
    out = capsys.readouterr().out
    assert rc == 1  # a present file differs from the release
    states = {line.split()[1]: line.split()[3] for line in out.splitlines()
              if line.startswith("swmh ")}
    assert states == {"instruction": "ok", "completion": "missing", "expert": "modified"}
    assert "git blob id" in out
    assert f"`imhi-bench data fetch --dest {dest}` replaces it" in out


def test_fetch_offline_reports_once_per_cause_and_stops(tmp_path, downloads, capsys):
    rc = main(["data", "fetch", "--dest", str(tmp_path), "--base-url", CLOSED,
               "--sets", "DR,SAD", "--formats", "instruction,expert", "--no-train"])
    out, err = capsys.readouterr()
    assert rc == 1
    failures = [line for line in out.splitlines() if line.startswith("- ")]
    assert failures == ["- cannot reach 127.0.0.1:1: Connection refused (4 files)"]
    # the progress bar stops where the server went out of reach, not at 4/4
    assert "fetch IMHI:   0%" in err and "4/4" not in err
    assert len(downloads) == 1  # the first connection error stops the run
    assert "0 downloaded, 0 already present, 4 failed" in out


def test_fetch_stops_at_the_first_timeout(tmp_path, downloads, capsys):
    # a server that accepts connections and never answers: each request would time out
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        rc = main(["data", "fetch", "--dest", str(tmp_path), "--base-url",
                   f"http://127.0.0.1:{silent.getsockname()[1]}/", "--sets", "DR,SAD",
                   "--formats", "instruction", "--no-train", "--timeout", "0.5"])
    finally:
        silent.close()
    out = capsys.readouterr().out
    assert rc == 1 and len(downloads) == 1
    assert "- cannot reach 127.0.0.1:" in out and ": timed out (2 files: " in out


def test_fetch_keeps_going_past_a_missing_file(imhi_dir, tmp_path, serve, downloads, capsys):
    # an HTTP error is about one file, not the server: the other files are still fetched
    mirror = tmp_path / "mirror"
    (mirror / "test_data/test_instruction").mkdir(parents=True)
    shutil.copy(imhi_dir / "test_data/test_instruction/SAD.csv",
                mirror / "test_data/test_instruction/SAD.csv")
    rc = main(["data", "fetch", "--dest", str(tmp_path / "data"), "--base-url", serve(mirror),
               "--sets", "DR,SAD", "--formats", "instruction", "--no-train"])
    out = capsys.readouterr().out
    assert rc == 1 and len(downloads) == 2
    assert "answered HTTP 404 File not found" in out
    assert "(1 file: test_data/test_instruction/DR.csv)" in out
    assert "1 downloaded, 0 already present, 1 failed" in out


def test_fetch_rejects_odd_base_url(tmp_path, capsys):
    assert main(["data", "fetch", "--dest", str(tmp_path), "--base-url", "ftp://x/"]) == 2
    assert "must start with http://" in capsys.readouterr().err


def test_fetch_of_never_released_files(tmp_path, capsys):
    assert main(["data", "fetch", "--dest", str(tmp_path), "--sets", "CLP"]) == 2
    assert "CLP was never released" in capsys.readouterr().err


def test_first_use_fetches_the_test_files_into_the_per_user_dir(
        fresh_user, blob_release, serve, downloads, capsys):
    mirror, files = blob_release
    base = serve(mirror)
    assert ensure_release(None, base_url=base) == fresh_user
    err = capsys.readouterr().err
    assert f"into {fresh_user}" in err and "fetched 3 IMHI files" in err
    for rel, content in files.items():
        got = fresh_user / rel
        assert (got.read_bytes() == content) if not rel.startswith("train_data/") \
            else not got.exists()  # train files only when training
    # once there, nothing is downloaded again
    tried = len(downloads)
    ensure_release(None, base_url=base)
    assert len(downloads) == tried and capsys.readouterr().err == ""
    # training needs the train files: fetched then, the test files skipped as present
    ensure_release(None, train=True, base_url=base)
    assert downloads[tried:] == [base + "train_data/instruction_data/Irf/train.csv"]
    assert (fresh_user / "train_data/instruction_data/Irf/train.csv").is_file()


def test_first_use_leaves_a_dir_the_user_named_alone(fresh_user, tmp_path, downloads,
                                                     monkeypatch):
    mine = tmp_path / "mine"
    assert ensure_release(str(mine), base_url=CLOSED) == mine
    monkeypatch.setenv("IMHI_DATA_DIR", str(tmp_path / "env"))
    assert ensure_release(None, base_url=CLOSED) == tmp_path / "env"
    assert downloads == [] and not mine.exists() and not (tmp_path / "env").exists()


def test_first_use_offline_fails_fast_with_one_line(fresh_user, downloads):
    with pytest.raises(ImhiError) as e:
        ensure_release(None, base_url=CLOSED)
    msg = str(e.value)
    assert "\n" not in msg and len(downloads) == 1
    assert msg.startswith(f"no IMHI data in {fresh_user}, and fetching it failed: "
                          "cannot reach 127.0.0.1:1: Connection refused")
    assert "`imhi-bench data fetch`" in msg and "--data-dir / $IMHI_DATA_DIR" in msg
    assert not list(fresh_user.rglob("*.csv"))


def test_commands_fetch_on_first_use_but_data_check_does_not(
        fresh_user, blob_release, serve, monkeypatch, tmp_path, capsys):
    mirror, _ = blob_release
    monkeypatch.setenv("IMHI_DATA_BASE_URL", serve(mirror))
    assert main(["data", "check"]) == 1
    out = capsys.readouterr().out
    assert "FAILED: no instruction file" in out and "run `imhi-bench data fetch`" in out
    assert not fresh_user.exists()
    # score reads the data: the first run fills the per-user dir before it starts
    main(["score", "--predictions", str(tmp_path / "absent"), "--no-db"])
    assert "fetched 3 IMHI files" in capsys.readouterr().err
    assert (fresh_user / "test_data/test_instruction/swmh.csv").is_file()
