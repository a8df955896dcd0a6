"""The CDN origin over real HTTP: a real ``imgpro serve --role cdn`` process per test module."""

from __future__ import annotations

import concurrent.futures
import io
import shutil
from pathlib import Path

import httpx
import pytest
import pyvips
from PIL import Image

from tests.conftest import CorpusImage, RunningServer, start_server, stop_server
from tests.transformer import sample_images
from transformer import sniff_format

TEAM = "t"


def place(server: RunningServer, uid: str, data: bytes) -> None:
    """Put an original where the local store keeps it (the API does this on upload)."""
    target = server.data_dir / "originals" / TEAM / uid
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def dims(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


@pytest.fixture(scope="module")
def cdn(tmp_path_factory: pytest.TempPathFactory, corpus: list[CorpusImage]):
    server = start_server(tmp_path_factory.mktemp("cdn"), {"IMGPRO_ROLE": "cdn"})
    for image in corpus:
        place(server, image.path.stem.replace(".", "-"), image.data)
    yield server
    assert stop_server(server) == 0


def uid_of(image: CorpusImage) -> str:
    return image.path.stem.replace(".", "-")


@pytest.fixture(scope="module")
def landscape(corpus: list[CorpusImage]) -> CorpusImage:
    return next(i for i in corpus if i.path.name == "photo-yellowflower-1920x1080.jpg")


@pytest.mark.parametrize(("size", "short"), [("s", 320), ("m", 640), ("l", 1080)])
@pytest.mark.parametrize("ext", ["jpg", "png", "webp", "avif"])
def test_rendition_headers_and_pixels(cdn: RunningServer, landscape: CorpusImage, size: str,
                                      short: int, ext: str) -> None:
    response = httpx.get(f"{cdn.url}/{TEAM}/{uid_of(landscape)}.{ext}?size={size}", timeout=60)
    assert response.status_code == 200, response.text
    fmt = "jpeg" if ext == "jpg" else ext
    assert response.headers["content-type"] == f"image/{fmt}"
    assert int(response.headers["content-length"]) == len(response.content)
    if fmt != "png":  # a miss: the fast encode, to be refined in the background
        assert response.headers["cache-control"] == "public, max-age=300"
        assert response.headers["x-rendition"] == "provisional"
    else:  # PNG is lossless at one setting: final on the miss
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert response.headers["x-rendition"] == "final"
    assert response.headers["etag"].startswith('"') and response.headers["etag"].endswith('"')
    assert sniff_format(response.content) == fmt
    width, height = dims(response.content) if fmt != "avif" else (None, None)
    if width is not None:
        assert min(width, height) == short
        assert abs(width / height - landscape.width / landscape.height) < 0.01


def test_every_corpus_image_at_m_webp(cdn: RunningServer, corpus: list[CorpusImage]) -> None:
    for image in corpus:
        response = httpx.get(f"{cdn.url}/{TEAM}/{uid_of(image)}.webp?size=m", timeout=60)
        assert response.status_code == 200, (image.path.name, response.text)
        width, height = dims(response.content)
        expected_short = min(640, image.width, image.height)
        assert min(width, height) == expected_short, image.path.name


def test_second_request_is_a_memory_hit_with_same_etag(cdn: RunningServer,
                                                       landscape: CorpusImage) -> None:
    url = f"{cdn.url}/{TEAM}/{uid_of(landscape)}.png?size=s"  # final at once: nothing to swap
    first = httpx.get(url)
    second = httpx.get(url)
    assert first.headers["x-cache"] in ("miss", "memory", "disk")
    assert second.headers["x-cache"] == "memory"
    assert first.headers["etag"] == second.headers["etag"]
    assert first.content == second.content


def test_conditional_get_and_head(cdn: RunningServer, landscape: CorpusImage) -> None:
    url = f"{cdn.url}/{TEAM}/{uid_of(landscape)}.png?size=m"  # final at once: a stable ETag
    full = httpx.get(url)
    etag = full.headers["etag"]
    not_modified = httpx.get(url, headers={"If-None-Match": etag})
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    assert not_modified.headers["etag"] == etag
    assert httpx.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
    head = httpx.head(url)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == full.headers["content-length"]
    assert head.headers["content-type"] == "image/png"


def test_original_served_byte_for_byte(cdn: RunningServer, corpus: list[CorpusImage]) -> None:
    for image in corpus:
        ext = {"jpeg": "jpg"}.get(image.format, image.format)
        response = httpx.get(f"{cdn.url}/{TEAM}/{uid_of(image)}.{ext}")
        assert response.status_code == 200
        assert response.headers["x-cache"] == "origin"
        assert response.content == image.data
        assert int(response.headers["content-length"]) == image.bytes
        revalidated = httpx.get(f"{cdn.url}/{TEAM}/{uid_of(image)}.{ext}",
                                headers={"If-None-Match": response.headers["etag"]})
        assert revalidated.status_code == 304


def test_conversion_at_original_size(cdn: RunningServer, landscape: CorpusImage) -> None:
    response = httpx.get(f"{cdn.url}/{TEAM}/{uid_of(landscape)}.png", timeout=60)
    assert response.status_code == 200
    assert sniff_format(response.content) == "png"
    assert dims(response.content) == (landscape.width, landscape.height)


def test_no_upscaling(cdn: RunningServer) -> None:
    small = io.BytesIO()
    Image.new("RGB", (300, 200), (10, 120, 200)).save(small, "PNG")
    place(cdn, "tiny", small.getvalue())
    for size in ("s", "m", "l"):
        response = httpx.get(f"{cdn.url}/{TEAM}/tiny.webp?size={size}")
        assert response.status_code == 200
        assert dims(response.content) == (300, 200)


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/t/nosuchimage.jpg", 404, "not_found"),
        ("/t/nosuchimage.webp?size=m", 404, "not_found"),
        ("/t/photo-yellowflower-1920x1080.jpg?size=huge", 422, "validation_error"),
        ("/t/photo-yellowflower-1920x1080.bmpx", 400, "unsupported_format"),
        ("/t/photo-yellowflower-1920x1080.gif", 400, "unsupported_format"),
        ("/nothing/here/at/all", 404, "not_found"),
    ],
)
def test_errors_in_reference_shape(cdn: RunningServer, path: str, status: int, code: str) -> None:
    response = httpx.get(f"{cdn.url}{path}")
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"] == code
    assert isinstance(body["message"], str) and body["message"]


def test_size_of_an_original_only_format_redirects_to_webp(cdn: RunningServer) -> None:
    place(cdn, "anim", sample_images.animated_gif())
    url = f"{cdn.url}/{TEAM}/anim.gif?size=s"
    redirect = httpx.get(url)
    assert redirect.status_code == 301
    assert redirect.headers["location"] == f"/{TEAM}/anim.webp?size=s"
    assert "immutable" in redirect.headers["cache-control"]
    followed = httpx.get(url, follow_redirects=True)
    assert followed.status_code == 200 and followed.headers["content-type"] == "image/webp"
    assert sniff_format(followed.content) == "webp"
    assert pyvips.Image.new_from_buffer(followed.content, "", n=-1).get("n-pages") == 3
    # Without a size the GIF itself is served, unchanged.
    original = httpx.get(f"{cdn.url}/{TEAM}/anim.gif")
    assert original.status_code == 200 and original.content == sample_images.animated_gif()


def test_wrong_method(cdn: RunningServer, landscape: CorpusImage) -> None:
    response = httpx.post(f"{cdn.url}/{TEAM}/{uid_of(landscape)}.jpg", content=b"x")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("fake", b"\xff\xd8\xff\xe0 this is not really a jpeg" * 10),
        ("text", b"hello, world\n" * 100),
    ],
)
def test_bad_original_is_a_clear_error_not_a_500(cdn: RunningServer, name: str,
                                                 data: bytes) -> None:
    place(cdn, name, data)
    response = httpx.get(f"{cdn.url}/{TEAM}/{name}.webp?size=m")
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_format"


def test_truncated_original(cdn: RunningServer, landscape: CorpusImage) -> None:
    place(cdn, "truncated", landscape.data[: len(landscape.data) // 3])
    response = httpx.get(f"{cdn.url}/{TEAM}/truncated.webp?size=m")
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_format"
    assert httpx.get(f"{cdn.url}/healthz").status_code == 200


def test_deleted_original_stops_being_served(server_factory, landscape: CorpusImage) -> None:
    server = server_factory({"IMGPRO_ROLE": "cdn", "IMGPRO_REVALIDATE_SECONDS": "0"})
    place(server, "gone", landscape.data)
    url = f"{server.url}/{TEAM}/gone.webp?size=s"
    assert httpx.get(url).status_code == 200
    assert httpx.get(url).headers["x-cache"] == "memory"
    (server.data_dir / "originals" / TEAM / "gone").unlink()
    assert httpx.get(url).status_code == 404
    assert httpx.get(f"{server.url}/{TEAM}/gone.jpg").status_code == 404


def test_disk_cache_survives_restart(server_factory, landscape: CorpusImage,
                                     tmp_path: Path) -> None:
    data_dir = tmp_path / "persist"
    first = server_factory({"IMGPRO_ROLE": "cdn"}, data_dir=data_dir)
    place(first, "kept", landscape.data)
    url_path = f"/{TEAM}/kept.webp?size=m"
    original = httpx.get(first.url + url_path)
    assert original.headers["x-cache"] == "miss"
    assert stop_server(first) == 0
    second = server_factory({"IMGPRO_ROLE": "cdn"}, data_dir=data_dir)
    again = httpx.get(second.url + url_path)
    assert again.headers["x-cache"] == "disk"
    assert again.content == original.content


def test_concurrent_misses_are_coalesced(server_factory, landscape: CorpusImage) -> None:
    server = server_factory({"IMGPRO_ROLE": "cdn"})
    place(server, "popular", landscape.data)
    url = f"{server.url}/{TEAM}/popular.avif?size=l"
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: httpx.get(url, timeout=60), range(8)))
    assert all(r.status_code == 200 for r in responses)
    layers = [r.headers["x-cache"] for r in responses]
    assert layers.count("miss") == 1, layers
    assert len({r.content for r in responses}) == 1


def test_overload_answers_503_with_retry_after(server_factory,
                                               corpus: list[CorpusImage]) -> None:
    biggest = max(corpus, key=lambda i: i.width * i.height)
    server = server_factory({
        "IMGPRO_ROLE": "cdn", "IMGPRO_TRANSFORM_THREADS": "1", "IMGPRO_TRANSFORM_QUEUE": "1",
        "IMGPRO_MEMORY_CACHE_MB": "0", "IMGPRO_DISK_CACHE_MB": "0",
    })
    for i in range(12):
        place(server, f"big{i}", biggest.data)
    urls = [f"{server.url}/{TEAM}/big{i}.avif?size=l" for i in range(12)]
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        responses = list(pool.map(lambda u: httpx.get(u, timeout=120), urls))
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 503}
    assert statuses.count(200) >= 1
    refused = [r for r in responses if r.status_code == 503]
    assert refused, statuses
    for response in refused:
        assert response.headers["retry-after"] == "1"
        assert response.json()["error"] == "overloaded"
        assert response.json()["action"] == {"type": "wait", "seconds": 1}
    assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_caches_off_transform_every_time(server_factory, landscape: CorpusImage) -> None:
    server = server_factory({"IMGPRO_ROLE": "cdn", "IMGPRO_MEMORY_CACHE_MB": "0",
                             "IMGPRO_DISK_CACHE_MB": "0"})
    place(server, "cold", landscape.data)
    layers = [httpx.get(f"{server.url}/{TEAM}/cold.jpg?size=s").headers["x-cache"]
              for _ in range(3)]
    assert layers == ["miss", "miss", "miss"]
    cache_dir = server.data_dir / "cache"
    assert not cache_dir.exists() or not any(cache_dir.iterdir())


def test_put_command_prints_a_working_url(tmp_path: Path, landscape: CorpusImage,
                                          server_factory) -> None:
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    server = server_factory({"IMGPRO_ROLE": "cdn"})
    env = {**os.environ, "PYTHONPATH": str(ROOT), "IMGPRO_DATA_DIR": str(server.data_dir),
           "IMGPRO_CDN_URL": server.url}
    copy = tmp_path / "photo.jpg"
    shutil.copy(landscape.path, copy)
    out = subprocess.run([sys.executable, "-m", "api", "put", str(copy), "--team", "cli"],
                         env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert out.startswith(f"{server.url}/cli/") and out.endswith(".jpeg")
    assert httpx.get(out).content == landscape.data
    assert httpx.get(out.replace(".jpeg", ".webp") + "?size=s").status_code == 200


@pytest.mark.parametrize("content", [b"plain text, not an image", None])
def test_put_command_refuses_bad_files_in_one_line(tmp_path: Path, content: bytes | None) -> None:
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    path = tmp_path / "thing.jpg"
    if content is not None:
        path.write_bytes(content)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "IMGPRO_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run([sys.executable, "-m", "api", "put", str(path)], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.startswith("imgpro put: ") and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
