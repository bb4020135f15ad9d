"""`imhi-bench data fetch` against a local HTTP server serving the shared IMHI copy."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading

import pytest

from imhi_bench.benchmark.data import release_manifest
from imhi_bench.cli.main import main
from imhi_bench.core.fileio import sha256_file


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


def test_fetch_downloads_verifies_and_skips(imhi_dir, tmp_path, serve, capsys):
    base = serve(imhi_dir)
    dest = tmp_path / "data"
    args = ["data", "fetch", "--dest", str(dest), "--base-url", base, "--sets", "DR,SAD",
            "--formats", "instruction,expert", "--no-train"]
    assert main(args) == 0
    assert "4 downloaded, 0 already present, 0 failed" in capsys.readouterr().out
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
    assert "DR.csv has sha256" in out and "not written" in out
    assert not (dest / "test_data/test_instruction/DR.csv").exists()
    assert (dest / "test_data/test_instruction/SAD.csv").is_file()
    assert not list(dest.rglob("*.tmp"))


def test_fetch_reports_unreachable_server(tmp_path, capsys):
    rc = main(["data", "fetch", "--dest", str(tmp_path), "--base-url", "http://127.0.0.1:9/",
               "--sets", "DR", "--formats", "expert", "--no-train", "--timeout", "2"])
    assert rc == 1
    assert "cannot download http://127.0.0.1:9/human_evaluation" in capsys.readouterr().out


def test_fetch_rejects_odd_base_url(tmp_path, capsys):
    assert main(["data", "fetch", "--dest", str(tmp_path), "--base-url", "ftp://x/"]) == 2
    assert "must start with http://" in capsys.readouterr().err
