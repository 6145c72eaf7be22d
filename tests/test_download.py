"""Downloads against a local HTTP server: what lands on disk, and what is left after failures."""

from __future__ import annotations

import hashlib
import json
import os
import random
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from gpen_cli.cli import app
from gpen_cli.core.errors import GpenError, WeightsMissingError
from gpen_cli.weights import download, registry, store, verify

PAYLOAD = random.Random(0).randbytes(300_000)
PAYLOAD_SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    """Serves `server.routes[path] = (mode, body)`; modes: ok, cut, stall."""

    server: _Server

    def do_GET(self) -> None:  # noqa: N802 - the http.server hook name
        mode, body = self.server.routes.get(self.path, ("missing", b""))
        if mode == "missing":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        # "cut" announces twice the body, then closes: a connection dropped mid-file.
        self.send_header("Content-Length", str(len(body) * (2 if mode == "cut" else 1)))
        self.end_headers()
        if mode == "stall":
            self.wfile.write(body[:1000])
            self.wfile.flush()
            self.server.release.wait(10)
            return
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[str, tuple[str, bytes]] = {}
        self.release = threading.Event()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


@pytest.fixture
def server() -> Iterator[_Server]:
    httpd = _Server()
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.release.set()
        httpd.shutdown()
        httpd.server_close()


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/tiny.bin"


def _spec(url: str = "http://127.0.0.1:9/tiny.bin", **changes: object) -> registry.ModelSpec:
    base = registry.ModelSpec(
        name="tiny",
        filename="tiny.bin",
        url=url,
        kind="detector",
        builder="gpen_cli.stages.detect:YuNetDetector",
        sha256=PAYLOAD_SHA256,
        description="test payload",
    )
    return replace(base, **changes)


def test_download_lands_the_file_and_checks_its_sha256(server, tmp_path):
    server.routes["/tiny.bin"] = ("ok", PAYLOAD)
    dest = tmp_path / "new" / "folder"  # created on demand

    path = download.download(_spec(server.url("/tiny.bin")), dest, progress=False)

    assert path == dest / "tiny.bin"
    assert path.read_bytes() == PAYLOAD
    assert sorted(p.name for p in dest.iterdir()) == ["tiny.bin"]  # no temp, no sidecar


@pytest.mark.parametrize(
    ("mode", "changes", "expected"),
    [
        ("ok", {"sha256": "0" * 64}, f"checksum mismatch: expected sha256 {'0' * 64}, got"),
        ("ok", {"size_bytes": len(PAYLOAD) + 1}, "size mismatch"),
        ("cut", {}, f"connection cut after {len(PAYLOAD)} of {2 * len(PAYLOAD)} bytes"),
        ("missing", {}, "HTTP 404"),
    ],
)
def test_a_failed_download_says_why_and_leaves_nothing(server, tmp_path, mode, changes, expected):
    server.routes["/tiny.bin"] = (mode, PAYLOAD)
    url = server.url("/tiny.bin")

    with pytest.raises(GpenError) as caught:
        download.download(_spec(url, **changes), tmp_path, progress=False)

    message = str(caught.value)
    assert expected in message
    assert "tiny.bin" in message and url in message and "\n" not in message
    assert list(tmp_path.iterdir()) == []


def test_a_checksum_mismatch_reports_the_hash_it_got(server, tmp_path):
    server.routes["/tiny.bin"] = ("ok", PAYLOAD)
    with pytest.raises(GpenError, match=PAYLOAD_SHA256):
        download.download(_spec(server.url("/tiny.bin"), sha256="f" * 64), tmp_path, progress=False)


def test_an_unreachable_host_says_so_and_leaves_nothing(tmp_path):
    url = _closed_port_url()
    with pytest.raises(GpenError, match="cannot reach 127.0.0.1:"):
        download.download(_spec(url), tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_stalled_transfer_times_out_and_leaves_nothing(server, tmp_path):
    server.routes["/tiny.bin"] = ("stall", PAYLOAD)
    with pytest.raises(GpenError, match=r"stalled for 0.3 s after 1000 bytes"):
        download.download(_spec(server.url("/tiny.bin")), tmp_path, progress=False, timeout=0.3)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_forced_download_keeps_the_existing_file(server, tmp_path):
    (tmp_path / "tiny.bin").write_bytes(b"previous")
    with pytest.raises(GpenError, match="HTTP 404"):
        download.download(_spec(server.url("/gone.bin")), tmp_path, progress=False)
    assert (tmp_path / "tiny.bin").read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.bin"]


def test_an_unwritable_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    with pytest.raises(GpenError, match=r"cannot write in .*a-file"):
        download.download(_spec(), blocker / "weights", progress=False)


def test_the_progress_bar_does_not_change_the_result(server, tmp_path):
    server.routes["/tiny.bin"] = ("ok", PAYLOAD)
    path = download.download(_spec(server.url("/tiny.bin")), tmp_path, progress=True)
    assert store.sha256_file(path) == PAYLOAD_SHA256


def test_without_a_known_hash_it_is_recorded_and_verify_uses_it(server, tmp_path, monkeypatch):
    server.routes["/tiny.bin"] = ("ok", PAYLOAD)
    spec = _spec(server.url("/tiny.bin"), sha256=None)
    monkeypatch.setitem(registry.MODELS, "tiny", spec)

    path = download.download(spec, tmp_path, progress=False)

    recorded = store.checksum_path(path).read_text().split()
    assert recorded == [PAYLOAD_SHA256, "tiny.bin"]
    result = verify.verify("tiny", tmp_path)
    assert (result.status, result.checksum_source, result.failed) == ("ok", "recorded", False)
    assert result.size_bytes == len(PAYLOAD)

    corrupted = bytearray(PAYLOAD)
    corrupted[1234] ^= 0xFF
    path.write_bytes(bytes(corrupted))
    result = verify.verify("tiny", tmp_path)
    assert (result.status, result.failed) == ("mismatch", True)
    assert result.actual_sha256 == hashlib.sha256(corrupted).hexdigest()


def test_verify_without_any_hash_is_unknown_not_a_failure(tmp_path, monkeypatch):
    monkeypatch.setitem(registry.MODELS, "tiny", _spec(sha256=None))
    (tmp_path / "tiny.bin").write_bytes(PAYLOAD)
    result = verify.verify("tiny", tmp_path)
    assert (result.status, result.failed, result.actual_sha256) == (
        "unknown",
        False,
        PAYLOAD_SHA256,
    )


def test_ensure_weight_without_network_names_file_folder_url_and_command(tmp_path, monkeypatch):
    url = _closed_port_url()
    monkeypatch.setitem(registry.MODELS, "tiny", _spec(url))

    with pytest.raises(WeightsMissingError) as caught:
        download.ensure_weight("tiny", tmp_path, progress=False)

    message = str(caught.value)
    for part in (
        "tiny.bin",
        str(tmp_path),
        url,
        f"gpen weights download tiny --weights-dir {tmp_path}",
    ):
        assert part in message
    assert "\n" not in message
    assert list(tmp_path.iterdir()) == []


def test_ensure_weight_with_downloads_off_does_not_fetch(server, tmp_path, monkeypatch):
    server.routes["/tiny.bin"] = ("ok", PAYLOAD)
    monkeypatch.setitem(registry.MODELS, "tiny", _spec(server.url("/tiny.bin")))
    with pytest.raises(WeightsMissingError, match="downloads are off"):
        download.ensure_weight("tiny", tmp_path, download=False)
    assert list(tmp_path.iterdir()) == []


def test_ensure_weight_fetches_once_then_returns_the_present_file(server, tmp_path, monkeypatch):
    server.routes["/tiny.bin"] = ("ok", PAYLOAD)
    monkeypatch.setitem(registry.MODELS, "tiny", _spec(server.url("/tiny.bin")))

    first = download.ensure_weight("tiny", tmp_path, progress=False)
    server.routes.clear()  # a second fetch would now fail with 404
    second = download.ensure_weight("tiny", tmp_path, progress=False)

    assert first == second == tmp_path / "tiny.bin"
    assert second.read_bytes() == PAYLOAD


def test_ensure_weight_refuses_a_present_file_of_the_wrong_size(tmp_path, monkeypatch):
    monkeypatch.setitem(registry.MODELS, "tiny", _spec(size_bytes=len(PAYLOAD)))
    (tmp_path / "tiny.bin").write_bytes(PAYLOAD[:1000])
    with pytest.raises(GpenError, match=r"has 1000 bytes, expected 300000.*--force"):
        download.ensure_weight("tiny", tmp_path)


def test_the_mirror_base_url_replaces_the_registry_url(server, tmp_path, monkeypatch):
    server.routes["/mirror/tiny.bin"] = ("ok", PAYLOAD)
    monkeypatch.setitem(registry.MODELS, "tiny", _spec(_closed_port_url()))
    monkeypatch.setenv(download.BASE_URL_ENV, server.url("/mirror/"))

    path = download.ensure_weight("tiny", tmp_path, progress=False)

    assert path.read_bytes() == PAYLOAD


def test_cli_download_then_verify_exit_codes(server, tmp_path, monkeypatch):
    server.routes["/tiny.bin"] = ("ok", PAYLOAD)
    monkeypatch.setitem(registry.MODELS, "tiny", _spec(_closed_port_url(), sha256=None))
    monkeypatch.setenv(download.BASE_URL_ENV, server.url(""))
    runner = CliRunner()
    folder = str(tmp_path)

    result = runner.invoke(app, ["weights", "download", "tiny", "--weights-dir", folder])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "tiny.bin").read_bytes() == PAYLOAD
    assert "sha256 recorded" in result.stdout

    again = runner.invoke(app, ["weights", "download", "tiny", "--weights-dir", folder])
    assert again.exit_code == 0 and "already present" in again.stdout

    checked = runner.invoke(app, ["weights", "verify", "tiny", "--weights-dir", folder, "--json"])
    assert checked.exit_code == 0
    report = json.loads(checked.stdout)
    assert report["ok"] is True
    assert report["models"][0]["status"] == "ok"

    (tmp_path / "tiny.bin").write_bytes(PAYLOAD[::-1])
    damaged = runner.invoke(app, ["weights", "verify", "--weights-dir", folder])
    assert damaged.exit_code == 1
    assert "mismatch" in damaged.stdout


def test_cli_failed_download_is_one_line_exit_2_and_keeps_the_old_file(
    server, tmp_path, monkeypatch
):
    monkeypatch.setitem(registry.MODELS, "tiny", _spec(_closed_port_url()))
    monkeypatch.setenv(download.BASE_URL_ENV, server.url("/nothing-here"))
    (tmp_path / "tiny.bin").write_bytes(b"old")

    args = ["weights", "download", "tiny", "--force", "--weights-dir", str(tmp_path)]
    result = CliRunner().invoke(app, args)

    assert result.exit_code == 2
    assert "HTTP 404" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert (tmp_path / "tiny.bin").read_bytes() == b"old"


def test_a_killed_downloads_temporary_file_is_removed_by_the_next_and_a_live_one_is_not(
    server, tmp_path
):
    """A download that was killed leaves its hidden temporary file; the next download of the
    same file removes it, but not one still being written (modified recently)."""
    from gpen_cli.io.atomic import is_partial_file, partial_path

    server.routes["/tiny.bin"] = ("ok", PAYLOAD)
    stale, live = partial_path(tmp_path / "tiny.bin"), partial_path(tmp_path / "tiny.bin")
    stale.write_bytes(PAYLOAD[:3])
    live.write_bytes(PAYLOAD[:5])
    an_hour_ago = time.time() - 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))

    download.download(_spec(server.url("/tiny.bin")), tmp_path, progress=False)

    assert (tmp_path / "tiny.bin").read_bytes() == PAYLOAD
    assert not stale.exists()
    assert live.exists() and is_partial_file(live)
