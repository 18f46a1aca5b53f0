"""Fetching and verifying the checkpoint, against a real HTTP server on 127.0.0.1 that supports Range."""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from deeplabv3_pipeline.errors import UserError
from deeplabv3_pipeline.model.checkpoint import (
    HASH_REGEX,
    cached_path,
    download,
    expected_sha256_prefix,
    fetch,
    is_url,
    part_path,
    verify_checkpoint,
)
from tests.conftest import run_script

GUIDE_NAME = "deeplabv3_r50-d8_512x1024_40k_cityscapes_20200605_022449-acadc2f8.pth"
PAYLOAD = random.Random(0).randbytes(200_000)
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()
GOOD = f"model-{SHA256[:8]}.pth"
WRONG_PREFIX = "0000000f" if not SHA256.startswith("0000000f") else "ffffffff"
BAD = f"bad-{WRONG_PREFIX}.pth"
CHUNK = 16 << 10  # small blocks, so that a 200 kB file takes the loop and the progress lines through their paces


@dataclass
class Served:
    """What the test server serves and how, and what it saw."""

    files: dict[str, bytes]
    ignore_range: bool = False
    cut_after: int | None = None  # close the connection after this many body bytes (an interrupted download)
    requests: list[tuple[str, str | None, int, int]] = field(default_factory=list)  # path, Range, status, bytes


def make_handler(served: Served) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = 5  # a stuck client cannot hold a server thread for longer

        def do_GET(self) -> None:
            body = served.files.get(self.path.lstrip("/"))
            requested = self.headers.get("Range")
            # Each request is recorded before its answer is sent: the client may return as soon as it has it.
            if body is None:
                served.requests.append((self.path, requested, 404, 0))
                self.send_error(404)
                return
            start = 0
            match = re.fullmatch(r"bytes=(\d+)-", requested or "")
            if match and not served.ignore_range:
                start = int(match.group(1))
                if start >= len(body):
                    served.requests.append((self.path, requested, 416, 0))
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(body) - start))
            sent = body[start:] if served.cut_after is None else body[start : start + served.cut_after]
            served.requests.append((self.path, requested, 206 if start else 200, len(sent)))
            self.end_headers()
            self.wfile.write(sent)
            if served.cut_after is not None:
                self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:  # keep pytest's output for failures
            pass

    return Handler


@pytest.fixture
def server() -> Iterator[tuple[str, Served]]:
    """(base URL, its state) of a threaded HTTP server on 127.0.0.1, shut down after the test."""
    served = Served({GOOD: PAYLOAD, BAD: PAYLOAD, "plain.pth": PAYLOAD})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(served))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_hash_regex_is_torch_hubs_and_reads_openmmlab_names():
    torch_hub = pytest.importorskip("torch.hub")
    assert HASH_REGEX.pattern == torch_hub.HASH_REGEX.pattern
    assert expected_sha256_prefix(GUIDE_NAME) == "acadc2f8"
    assert expected_sha256_prefix(Path("runs-ab.1") / GUIDE_NAME) == "acadc2f8"
    assert expected_sha256_prefix("random.pth") is None
    assert expected_sha256_prefix("deeplabv3_r50-d8_512x1024.pth") is None  # '-d8_' and '-512x' are no hash
    assert expected_sha256_prefix(Path("runs-ab.1") / "random.pth") is None  # only the file name counts


def test_urls_and_cache_paths(tmp_path):
    url = f"https://download.openmmlab.com/mmsegmentation/v0.5/deeplabv3/x/{GUIDE_NAME}"
    assert is_url(url) and is_url("HTTP://host/a.pth") and is_url("file:///tmp/a.pth")
    assert not is_url("checkpoints/a.pth") and not is_url("/abs/a.pth") and not is_url(tmp_path / "a.pth")
    assert cached_path(url, tmp_path) == tmp_path / GUIDE_NAME
    assert cached_path("https://host/d/my%20model.pth?token=1", tmp_path) == tmp_path / "my model.pth"
    with pytest.raises(UserError, match="names no file"):
        cached_path("https://host/folder/", tmp_path)


def test_download_gives_the_file_and_its_sha256(server, tmp_path, caplog):
    base, served = server
    destination = cached_path(f"{base}/{GOOD}", tmp_path / "cache")
    with caplog.at_level(logging.INFO, logger="deeplabv3_pipeline.model.checkpoint"):
        assert download(f"{base}/{GOOD}", destination, chunk=CHUNK) == destination
    assert destination.read_bytes() == PAYLOAD
    assert not part_path(destination).exists()
    assert verify_checkpoint(destination) == SHA256
    assert served.requests == [(f"/{GOOD}", None, 200, len(PAYLOAD))]
    percentages = [int(m.group(1)) for m in re.finditer(r": (\d+)% \(", caplog.text)]
    assert 9 <= len(percentages) <= 11 and percentages[-1] == 100
    # Fetched once: a second call only verifies the file.
    assert fetch(f"{base}/{GOOD}", destination) == (destination, SHA256)
    assert len(served.requests) == 1


def test_a_partial_download_is_resumed_with_range(server, tmp_path):
    base, served = server
    destination = tmp_path / GOOD
    half = len(PAYLOAD) // 2
    part_path(destination).write_bytes(PAYLOAD[:half])
    assert fetch(f"{base}/{GOOD}", destination) == (destination, SHA256)
    assert destination.read_bytes() == PAYLOAD
    assert served.requests == [(f"/{GOOD}", f"bytes={half}-", 206, len(PAYLOAD) - half)]


def test_an_interrupted_download_keeps_its_part_and_a_rerun_resumes(server, tmp_path):
    base, served = server
    destination = tmp_path / GOOD
    served.cut_after = 50_000
    with pytest.raises(UserError, match=r"stopped at 50,000 of 200,000 bytes; kept in .*\.part: rerun to resume"):
        download(f"{base}/{GOOD}", destination, chunk=CHUNK)
    assert not destination.exists() and part_path(destination).stat().st_size == 50_000
    served.cut_after = None
    download(f"{base}/{GOOD}", destination, chunk=CHUNK)
    assert destination.read_bytes() == PAYLOAD
    assert served.requests[-1] == (f"/{GOOD}", "bytes=50000-", 206, 150_000)


def test_a_server_that_ignores_range_starts_over(server, tmp_path):
    base, served = server
    served.ignore_range = True
    destination = tmp_path / GOOD
    part_path(destination).write_bytes(b"\0" * 1000)  # not the file's start: appending to it would be wrong
    download(f"{base}/{GOOD}", destination, chunk=CHUNK)
    assert destination.read_bytes() == PAYLOAD
    assert served.requests == [(f"/{GOOD}", "bytes=1000-", 200, len(PAYLOAD))]


def test_a_complete_part_is_finished_on_416(server, tmp_path):
    base, served = server
    destination = tmp_path / GOOD
    part_path(destination).write_bytes(PAYLOAD)
    download(f"{base}/{GOOD}", destination)
    assert destination.read_bytes() == PAYLOAD and not part_path(destination).exists()
    assert served.requests == [(f"/{GOOD}", f"bytes={len(PAYLOAD)}-", 416, 0)]


def test_a_part_longer_than_the_file_is_replaced(server, tmp_path):
    base, served = server
    destination = tmp_path / GOOD
    part_path(destination).write_bytes(PAYLOAD + b"junk")
    assert fetch(f"{base}/{GOOD}", destination) == (destination, SHA256)
    assert [status for _, _, status, _ in served.requests] == [416, 200]


def test_a_wrong_hash_is_refused_and_leaves_nothing(server, tmp_path):
    base, _ = server
    destination = tmp_path / BAD
    with pytest.raises(UserError, match=rf"sha256 {SHA256}.*starts with {WRONG_PREFIX}.*rerun") as raised:
        download(f"{base}/{BAD}", destination)
    assert f"{base}/{BAD}" in str(raised.value) and "\n" not in str(raised.value)
    assert not destination.exists() and not part_path(destination).exists()


def test_the_url_names_hash_is_checked_whatever_the_output_is_called(server, tmp_path):
    base, _ = server
    with pytest.raises(UserError, match=f"starts with {WRONG_PREFIX}"):
        download(f"{base}/{BAD}", tmp_path / "renamed.pth")
    assert list(tmp_path.iterdir()) == []


def test_a_name_without_hash_is_downloaded_unchecked(server, tmp_path):
    base, _ = server
    assert fetch(f"{base}/plain.pth", tmp_path / "plain.pth") == (tmp_path / "plain.pth", SHA256)


def test_network_errors_are_one_clear_line(server, tmp_path):
    base, _ = server
    with pytest.raises(UserError, match=rf"cannot download {base}/absent-12345678.pth: HTTP 404 .*check"):
        download(f"{base}/absent-12345678.pth", tmp_path / "absent-12345678.pth")
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    with pytest.raises(UserError, match=rf"cannot download http://127.0.0.1:{closed}/{GOOD}: .*rerun to resume"):
        download(f"http://127.0.0.1:{closed}/{GOOD}", tmp_path / GOOD, timeout=2)
    assert list(tmp_path.iterdir()) == []


def test_local_files_are_verified_by_their_names(tmp_path):
    matching, mismatching, plain = tmp_path / GOOD, tmp_path / BAD, tmp_path / "plain.pth"
    for path in (matching, mismatching, plain):
        path.write_bytes(PAYLOAD)
    assert verify_checkpoint(matching) == SHA256
    assert verify_checkpoint(plain) == SHA256  # no hash in the name: nothing to check against
    with pytest.raises(UserError) as raised:
        verify_checkpoint(mismatching)
    message = str(raised.value)
    assert str(mismatching) in message and WRONG_PREFIX in message and SHA256 in message
    assert "Delete it and download it again" in message and "\n" not in message
    with pytest.raises(UserError, match=f"checkpoint {tmp_path / 'absent.pth'} does not exist"):
        verify_checkpoint(tmp_path / "absent.pth")
    copy = tmp_path / "copies" / "deeplabv3.pth"
    assert fetch(str(matching), copy) == (copy, SHA256) and copy.read_bytes() == PAYLOAD
    assert not part_path(copy).exists()
    with pytest.raises(UserError, match="--output is needed"):
        fetch(f"file://{matching}")


def test_file_urls_are_downloaded_too(tmp_path):
    source = tmp_path / "source" / GOOD
    source.parent.mkdir()
    source.write_bytes(PAYLOAD)
    part_path(tmp_path / GOOD).write_bytes(b"\0" * 10)  # file:// ignores Range: started over
    assert fetch(source.as_uri(), tmp_path / GOOD) == (tmp_path / GOOD, SHA256)
    assert (tmp_path / GOOD).read_bytes() == PAYLOAD


def test_loading_a_checkpoint_whose_name_lies_is_refused_before_torch_reads_it(tmp_path):
    from deeplabv3_pipeline.model.mmseg_model import load_state_dict_file

    liar = tmp_path / BAD
    damaged = b"PK\x03\x04" + PAYLOAD  # starts as torch.save's zip does; torch.load would call it 'truncated'
    liar.write_bytes(damaged)
    digest = hashlib.sha256(damaged).hexdigest()
    with pytest.raises(UserError, match=f"has sha256 {digest}, but its name says the sha256 starts with"):
        load_state_dict_file(liar)


def test_cli_downloads_verifies_and_records_the_sha256(server, tmp_path):
    base, _ = server
    output, record = tmp_path / "cache" / GOOD, tmp_path / "checkpoint.json"
    completed = run_script("fetch_checkpoint.py", f"{base}/{GOOD}", "--output", output, "--sha256-json", record)
    assert completed.stdout.strip() == SHA256
    assert output.read_bytes() == PAYLOAD
    assert json.loads(record.read_text()) == {"checkpoint": str(output), "sha256": SHA256, "source": f"{base}/{GOOD}"}
    # A local file: verified only, no --output needed.
    assert run_script("fetch_checkpoint.py", output).stdout.strip() == SHA256


def test_cli_refuses_a_mismatch_with_one_error_line(server, tmp_path):
    base, _ = server
    completed = run_script("fetch_checkpoint.py", f"{base}/{BAD}", "--output", tmp_path / BAD, check=False)
    assert completed.returncode == 2 and completed.stdout == ""
    errors = [line for line in completed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and WRONG_PREFIX in errors[0] and SHA256 in errors[0]
    assert "Traceback" not in completed.stderr
    assert list(tmp_path.iterdir()) == []
    local = tmp_path / BAD
    local.write_bytes(PAYLOAD)
    completed = run_script("fetch_checkpoint.py", local, check=False)
    assert completed.returncode == 2 and completed.stderr.startswith(f"error: checkpoint {local} has sha256 {SHA256}")
