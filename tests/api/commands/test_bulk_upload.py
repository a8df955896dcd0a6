"""``imgpro upload``: the real command against a real server, plus its pure parts.

The retry tests use a tiny stand-in HTTP server that answers 429/503 on purpose, since a
real imgpro only does that under real overload or after an hour of anonymous uploads.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.commands.bulk_upload import (
    CountingReader,
    FileResult,
    content_hash,
    non_image_reason,
    retry_delay,
    size_refusal,
    walk,
)
from api.rules.plans import MB
from tests.conftest import ROOT, CorpusImage, RunningServer, running_server


def run_cli(*args: str, key: str | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m api ARGS`` as a user runs it; IMGPRO_* of the test environment left out."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGPRO_")}
    env["PYTHONPATH"] = str(ROOT)
    if key is not None:
        env["IMGPRO_API_KEY"] = key
    return subprocess.run([sys.executable, "-m", "api", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def json_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def by_name(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {Path(line["path"]).name: line for line in lines}


# ---- pure parts ---------------------------------------------------------------------------

def test_walk_finds_files_once_and_reports_missing_paths(tmp_path: Path) -> None:
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    for name in ("b.jpg", "a.png", "sub/c.jpg", "sub/deeper/d.webp"):
        (tmp_path / name).write_bytes(b"x")
    flat = [p.name for p in walk([tmp_path], recursive=False) if isinstance(p, Path)]
    assert flat == ["a.png", "b.jpg"]
    deep = [p for p in walk([tmp_path, tmp_path / "b.jpg", tmp_path / "nope"], recursive=True)]
    names = [p.name for p in deep if isinstance(p, Path)]
    assert names == ["a.png", "b.jpg", "c.jpg", "d.webp"]  # b.jpg named twice, listed once
    missing = [r for r in deep if isinstance(r, FileResult)]
    assert [(Path(r.path).name, r.status, r.reason) for r in missing] == [
        ("nope", "failed", "no such file or directory")]


def test_non_images_are_recognised_by_content(corpus: list[CorpusImage]) -> None:
    for image in corpus:
        assert non_image_reason(image.data[:2048]) is None, image.path.name
    assert non_image_reason(b"") == "empty file"
    assert non_image_reason(b"hello, I am a text file named photo.jpg") is not None
    assert content_hash(b"abc") == "sha256:" + hashlib.sha256(b"abc").hexdigest()


def test_size_limits_are_the_servers() -> None:
    jpeg, svg = b"\xff\xd8\xff\xe0", b"<svg xmlns='http://www.w3.org/2000/svg'>"
    assert size_refusal(20 * MB, jpeg, authenticated=False) is None
    assert "20 MB limit for anonymous" in (size_refusal(20 * MB + 1, jpeg, authenticated=False)
                                           or "")
    assert size_refusal(70 * MB, jpeg, authenticated=True) is None
    assert size_refusal(70 * MB + 1, jpeg, authenticated=True) is not None
    assert "10 MB" in (size_refusal(10 * MB + 1, svg, authenticated=True) or "")


def test_retry_delay_honours_retry_after() -> None:
    def answer(value: str | None) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": value} if value else {})

    assert retry_delay(answer("7"), attempt=1) == 7
    now = datetime(2030, 1, 1, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=42), usegmt=True)
    assert retry_delay(answer(later), attempt=1, now=now.timestamp()) == pytest.approx(42)
    assert [retry_delay(answer(None), attempt=n) for n in (1, 2, 3, 9)] == [1, 2, 4, 30]
    assert retry_delay(None, attempt=2) == 2  # connection error: backoff


def test_counting_reader_takes_back_bytes_on_a_retry() -> None:
    seen: list[int] = []
    reader = CountingReader(b"x" * 100, seen.append)
    reader.seek(0)
    reader.read(60)
    reader.seek(0)  # httpx rewinds for the next attempt
    while reader.read(30):
        pass
    assert sum(seen) == 100 and reader.sent == 100


# ---- against a real server ----------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    data_dir = tmp_path_factory.mktemp("bulk") / "data"
    with running_server(data_dir, {"IMGPRO_RATE_LIMITS": "off"}) as running:
        yield running


@pytest.fixture(scope="module")
def key(server: RunningServer) -> str:
    email = f"bulk-{uuid.uuid4().hex[:10]}@example.com"
    created = run_cli("keys", "create", "--email", email, "--api", server.url, "--json")
    assert created.returncode == 0, created.stderr
    return str(json.loads(created.stdout)["key"])


def small_photos(corpus: list[CorpusImage], count: int) -> list[CorpusImage]:
    return sorted((i for i in corpus if i.bytes < 800_000), key=lambda i: i.bytes)[:count]


def test_upload_folder_is_idempotent(server: RunningServer, key: str, corpus: list[CorpusImage],
                                     tmp_path: Path) -> None:
    a, b, c = small_photos(corpus, 3)
    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    shutil.copy(a.path, folder / a.path.name)
    shutil.copy(b.path, folder / b.path.name)
    shutil.copy(c.path, folder / "nested" / c.path.name)
    (folder / "notes.txt").write_text("not an image\n")
    (folder / "fake.jpg").write_text("a text file with an image name\n")
    (folder / "empty.png").write_bytes(b"")

    first = run_cli("upload", str(folder), "--json", "--api", server.url, "--namespace",
                    "bulk-test", "--tags", "bulk,cli", "--concurrency", "2", key=key)
    assert first.returncode == 0, first.stdout + first.stderr
    results = by_name(json_lines(first.stdout))
    assert {n: r["status"] for n, r in results.items()} == {
        a.path.name: "uploaded", b.path.name: "uploaded", "notes.txt": "skipped",
        "fake.jpg": "skipped", "empty.png": "skipped"}  # not recursive: nested/ left alone
    assert results["fake.jpg"]["reason"].startswith("not an image")
    assert results["empty.png"]["reason"] == "empty file"
    uploaded = results[a.path.name]
    assert uploaded["external_id"] == content_hash(a.data)
    assert uploaded["bytes"] == a.bytes

    second = run_cli("upload", str(folder), "--recursive", "--json", "--api", server.url,
                     "--namespace", "bulk-test", key=key)
    assert second.returncode == 0, second.stdout + second.stderr
    again = by_name(json_lines(second.stdout))
    assert again[a.path.name]["status"] == again[b.path.name]["status"] == "exists"
    assert again[a.path.name]["id"] == uploaded["id"]
    assert again[c.path.name]["status"] == "uploaded"

    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"},
                      timeout=30) as http:
        listed = http.get("/v1/media", params={"namespace": "bulk-test"}).json()["items"]
        assert len(listed) == 3  # re-running stored nothing twice
        media = http.get(f"/v1/media/{uploaded['id']}").json()
        assert media["tags"] == ["bulk", "cli"] and media["name"] == a.path.name
        assert media["external_id"] == content_hash(a.data)
        original = http.get(uploaded["src"])
        assert original.status_code == 200 and original.content == a.data


def test_summary_table_and_exit_code_on_failure(server: RunningServer, key: str,
                                                corpus: list[CorpusImage], tmp_path: Path) -> None:
    (photo,) = small_photos(corpus, 1)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 2000)  # JPEG magic, no image behind it
    shutil.copy(photo.path, tmp_path / photo.path.name)
    (tmp_path / "readme.md").write_text("# hi\n")

    done = run_cli("upload", str(tmp_path), str(tmp_path / "missing.png"), "--api", server.url,
                   key=key)
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "imgpro upload" in out and "3/3 files" in out  # summary table, progress line
    for expected in ("uploaded", "exists", "skipped", "failed", "unsupported_format",
                     "no such file or directory", "not an image"):
        assert expected in out, expected


def test_bad_key_fails_and_stops_sending(server: RunningServer, corpus: list[CorpusImage],
                                         tmp_path: Path) -> None:
    for image in small_photos(corpus, 3):
        shutil.copy(image.path, tmp_path / image.path.name)
    done = run_cli("upload", str(tmp_path), "--json", "--concurrency", "1", "--api", server.url,
                   "--key", "img_live_" + "x" * 43)
    assert done.returncode == 1
    lines = json_lines(done.stdout)
    assert all(line["status"] == "failed" for line in lines) and len(lines) == 3
    assert lines[0]["reason"].startswith("unauthorized")
    assert all(line["reason"].startswith("not sent: unauthorized") for line in lines[1:])


def test_anonymous_upload_without_key(server: RunningServer, corpus: list[CorpusImage],
                                      tmp_path: Path) -> None:
    (photo,) = small_photos(corpus, 1)
    done = run_cli("upload", str(photo.path), "--json", "--api", server.url)
    assert done.returncode == 0, done.stderr
    (line,) = json_lines(done.stdout)
    assert line["status"] == "uploaded" and "external_id" not in line
    media = httpx.get(f"{server.url}/v1/media/{line['id']}", timeout=30).json()
    assert "expires_at" in media

    big = tmp_path / "big.jpg"
    with big.open("wb") as fh:  # sparse: 21 MB on paper, nothing on disk
        fh.write(b"\xff\xd8\xff\xe0")
        fh.truncate(21 * MB)
    done = run_cli("upload", str(big), "--json", "--api", server.url)
    assert done.returncode == 1
    (line,) = json_lines(done.stdout)
    assert line["status"] == "failed" and line["attempts"] == 0
    assert line["reason"].startswith("file_too_large")


# ---- retries against a server that says "later" -------------------------------------------

class FlakyApi:
    """Answers the given statuses in turn (then 201), recording what it was sent."""

    def __init__(self, answers: list[tuple[int, dict[str, str]]]) -> None:
        self.answers = list(answers)
        self.bodies: list[int] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                length = int(self.headers.get("Content-Length", 0))
                api.bodies.append(len(self.rfile.read(length)))
                status, headers = api.answers.pop(0) if api.answers else (201, {})
                body = json.dumps(
                    {"id": "flaky0000001", "url": "u", "src": "s"} if status == 201
                    else {"error": "rate_limited" if status == 429 else "unavailable",
                          "message": "later"}).encode()
                self.send_response(status)
                for name, value in {**headers, "Content-Type": "application/json",
                                    "Content-Length": str(len(body))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FlakyApi:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def test_retries_429_and_5xx_then_succeeds(corpus: list[CorpusImage]) -> None:
    (photo,) = small_photos(corpus, 1)
    answers = [(429, {"Retry-After": "1"}), (503, {"Retry-After": "0"}), (502, {})]
    with FlakyApi(answers) as api:
        done = run_cli("upload", str(photo.path), "--json", "--api", api.url, "--key", "k")
    assert done.returncode == 0, done.stdout + done.stderr
    (line,) = json_lines(done.stdout)
    assert line["status"] == "uploaded" and line["attempts"] == 4
    assert len(api.bodies) == 4 and min(api.bodies) > photo.bytes  # the whole file each time


def test_gives_up_when_retry_after_exceeds_max_wait(corpus: list[CorpusImage]) -> None:
    (photo,) = small_photos(corpus, 1)
    with FlakyApi([(429, {"Retry-After": "3600"})]) as api:
        done = run_cli("upload", str(photo.path), "--json", "--api", api.url, "--max-wait", "5")
    assert done.returncode == 1
    (line,) = json_lines(done.stdout)
    assert line["status"] == "failed" and line["attempts"] == 1
    assert "over --max-wait" in line["reason"] and "rate_limited" in line["reason"]
    assert len(api.bodies) == 1


def test_gives_up_after_the_retry_budget(corpus: list[CorpusImage]) -> None:
    (photo,) = small_photos(corpus, 1)
    with FlakyApi([(500, {"Retry-After": "0"})] * 5) as api:
        done = run_cli("upload", str(photo.path), "--json", "--api", api.url, "--retries", "2")
    assert done.returncode == 1
    (line,) = json_lines(done.stdout)
    assert line["attempts"] == 3 and "gave up after 3 attempts" in line["reason"]
    assert len(api.bodies) == 3
