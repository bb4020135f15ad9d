"""`imhi-bench data fetch` against servers that misbehave, and destinations that cannot take
the files (issue 21, items 9 and 15): an endless answer is cut off at the manifest's size, a
trickle fails within --timeout (plus the file's allowance), the whole fetch within
--deadline, --timeout/--deadline <= 0 are refused, and a --dest that is a file, cannot be
written or fills up is one line.  Every server binds 127.0.0.1 only; every case is bounded
in seconds, and the destination is left as it was where nothing was fetched."""

from __future__ import annotations

import errno
import hashlib
import http.server
import threading
import time
from pathlib import Path

import pytest

from imhi_bench.benchmark import fetch as fetch_module
from imhi_bench.benchmark import release as release_module
from imhi_bench.cli.main import main

BODY = b"query,gpt-3.5-turbo\n\"post\",\"no. Reasoning: x\"\n"
REL = "test_data/test_instruction/DR.csv"


class Misbehaving(http.server.BaseHTTPRequestHandler):
    """mode: "endless" (no length, bytes for ever), "trickle" (one byte a second),
    "loop" (redirects to itself), "ok" (BODY)."""

    mode = "ok"

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802
        stop = self.server.stopping  # type: ignore[attr-defined]
        if self.mode == "loop":
            self.send_response(302)
            self.send_header("Location", self.path)
            self.end_headers()
            return
        self.send_response(200)
        if self.mode != "endless":
            self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        try:
            if self.mode == "endless":
                block = b"x" * 65536
                while not stop.is_set():
                    self.wfile.write(block)
            elif self.mode == "trickle":
                for b in BODY:
                    if stop.wait(1.0):
                        return
                    self.wfile.write(bytes([b]))
                    self.wfile.flush()
            else:
                self.wfile.write(BODY)
        except OSError:  # the client hung up: that is the point
            pass


@pytest.fixture
def server():
    """start(mode) -> base URL of a Misbehaving server on 127.0.0.1."""
    servers = []

    def start(mode: str) -> str:
        handler = type("H", (Misbehaving,), {"mode": mode})
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        srv.daemon_threads = True
        srv.stopping = threading.Event()
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}/"

    yield start
    for srv in servers:
        srv.stopping.set()
        srv.shutdown()
        srv.server_close()


@pytest.fixture(autouse=True)
def one_file(monkeypatch):
    """A release of one small file (its real size and sha256 in the manifest)."""
    manifest = {REL: {"sha256": hashlib.sha256(BODY).hexdigest(), "bytes": len(BODY)}}
    monkeypatch.setattr(release_module, "release_manifest", lambda: manifest)


def fetch(dest: Path, url: str, *extra: str) -> list[str]:
    return ["data", "fetch", "--dest", str(dest), "--base-url", url, *extra]


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else b"<dir>"
            for p in sorted(root.rglob("*"))}


def failure(out: str) -> str:
    (line,) = [x for x in out.splitlines() if x.startswith("- ")]
    return line


def test_the_good_server_works(server, tmp_path, capsys):
    assert main(fetch(tmp_path / "data", server("ok"))) == 0
    assert (tmp_path / "data" / REL).read_bytes() == BODY


def test_an_endless_answer_is_cut_off_at_the_manifest_size(server, tmp_path, capsys):
    dest = tmp_path / "data"
    dest.mkdir()
    t0 = time.monotonic()
    url = server("endless")
    rc = main(fetch(dest, url, "--timeout", "5"))
    out = capsys.readouterr().out
    assert rc == 1 and time.monotonic() - t0 < 5
    assert failure(out) == (f"- {url[7:-1]} sent more bytes than the release's file has: not "
                            "written (is --base-url the repository at commit 42cd29d?) (1 file: "
                            f"{REL})")
    assert snapshot(dest) == {}


def test_a_trickle_fails_within_the_timeout(server, tmp_path, capsys):
    dest = tmp_path / "data"
    dest.mkdir()
    t0 = time.monotonic()
    rc = main(fetch(dest, server("trickle"), "--timeout", "2"))
    took = time.monotonic() - t0
    out = capsys.readouterr().out
    assert rc == 1 and took < 5, took
    assert "sends too slowly: a file did not arrive within --timeout 2 s plus 1 s per 16 KiB " \
           "of it (stopped there): retry on a faster connection, or raise --timeout " \
           f"(1 file: {REL})" in failure(out)
    assert snapshot(dest) == {}


def test_the_whole_fetch_has_a_deadline(server, tmp_path, capsys):
    dest = tmp_path / "data"
    dest.mkdir()
    t0 = time.monotonic()
    rc = main(fetch(dest, server("trickle"), "--timeout", "30", "--deadline", "1"))
    out = capsys.readouterr().out
    assert rc == 1 and time.monotonic() - t0 < 4
    assert failure(out) == ("- data fetch ran past --deadline 1 s (stopped there): run it "
                            "again for the rest (verified files are kept), or raise --deadline "
                            f"(1 file: {REL})")
    assert snapshot(dest) == {}


def test_a_redirect_loop_is_one_line(server, tmp_path, capsys):
    rc = main(fetch(tmp_path / "data", server("loop")))
    out = capsys.readouterr().out
    assert rc == 1
    assert failure(out).endswith(f"redirects in a loop (HTTP 302): check --base-url (1 file: "
                                 f"{REL})")


@pytest.mark.parametrize("extra, line", [
    (["--timeout", "0"], "--timeout 0: give a positive number of seconds (default 60)"),
    (["--timeout", "-5"], "--timeout -5: give a positive number of seconds (default 60)"),
    (["--timeout", "nan"], "--timeout nan: give a positive number of seconds (default 60)"),
    (["--deadline", "0"], "--deadline 0: give a positive number of seconds (default 3600)"),
])
def test_limits_that_are_not_positive_are_refused(extra, line, server, tmp_path, capsys):
    rc = main(fetch(tmp_path / "data", server("ok"), *extra))
    _, err = capsys.readouterr()
    assert rc == 2 and err == f"imhi-bench: error: {line}\n"
    assert not (tmp_path / "data").exists()


def test_a_dest_that_cannot_take_the_files_is_one_line(server, tmp_path, capsys):
    url = server("ok")
    (tmp_path / "a-file").write_text("x")
    cases = {
        str(tmp_path / "a-file"): f"--dest {tmp_path / 'a-file'} is a file, not a folder: "
                                  "pass the folder to put the IMHI files in",
        str(tmp_path / "a-file" / "sub"): f"--dest {tmp_path / 'a-file' / 'sub'}: "
                                          f"{tmp_path / 'a-file'} is a file, not a folder",
        "/proc/imhi-data": "--dest /proc/imhi-data: cannot create files in /proc",
    }
    before = snapshot(tmp_path)
    for dest, line in cases.items():
        rc = main(fetch(Path(dest), url))
        _, err = capsys.readouterr()
        assert rc == 2 and err.startswith(f"imhi-bench: error: {line}"), err
        assert err.count("\n") == 1
    assert snapshot(tmp_path) == before


def test_a_full_disk_is_one_line(server, tmp_path, capsys, monkeypatch):
    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fetch_module, "atomic_write_bytes", full)
    dest = tmp_path / "data"
    dest.mkdir()
    rc = main(fetch(dest, server("ok")))
    _, err = capsys.readouterr()
    assert rc == 2
    # (the progress bar shares stderr; the error is the last line)
    assert err.strip().splitlines()[-1] == (
        f"imhi-bench: error: cannot write {dest / REL} (No space left on device): free space "
        "there or pass --dest on another disk (0 files written before it are kept, verified)")
    assert snapshot(dest) == {}


def test_an_unreadable_data_file_is_one_line_naming_it(tmp_path, capsys):
    """A data file that exists but cannot be read (here: an I/O error, which root meets as
    well as anyone): `data check` names it and the fix; `data fetch` replaces it."""
    folder = tmp_path / "data" / "test_data" / "test_instruction"
    folder.mkdir(parents=True)
    (folder / "DR.csv").symlink_to("/proc/self/mem")  # a regular file every read fails on
    rc = main(["data", "check", "--data-dir", str(tmp_path / "data"), "--sets", "DR",
               "--formats", "instruction"])
    out = capsys.readouterr().out
    assert rc == 1
    assert (f"- DR instruction: cannot read {folder / 'DR.csv'} (Input/output error): make it "
            "a readable file (chmod u+r), or replace it\n") in out
