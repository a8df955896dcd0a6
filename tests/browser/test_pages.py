"""The upload page and the viewer page in a real headless Chromium against a real server.

A person's path: open ``/``, pick (or drop) corpus photos, watch them upload, copy the
links, open the viewer page. Every URL a copy button holds is fetched for real, so a page
that shows links the CDN cannot serve fails here. Screenshots land in tests/artifacts/browser/.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import CorpusImage, RunningServer, running_server

KEY_IN_USE = "() => document.querySelector('#key-status').textContent.includes('plan free')"
"""Page-side predicates are functions, not expression strings: the page's CSP forbids eval."""
FORMAT_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp",
                "avif": "image/avif"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(tmp_path_factory.mktemp("browser") / "data") as running:
        yield running


def corpus_file(corpus: list[CorpusImage], name: str) -> CorpusImage:
    return next(image for image in corpus if image.path.name == name)


def watch_errors(page: Any) -> list[str]:
    """Script errors and console errors (CSP violations, failed loads) seen by the page."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on("console", lambda msg: errors.append(f"console: {msg.text} {msg.location.get('url')}")
            if msg.type == "error" else None)
    return errors


def drop_file(page: Any, image: CorpusImage, mime: str) -> None:
    """Drop a file on the drop zone the way a browser does: a drop event with a DataTransfer."""
    transfer = page.evaluate_handle(
        """([b64, name, type]) => {
            const bin = atob(b64);
            const bytes = new Uint8Array(bin.length);
            for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type }));
            return transfer;
        }""",
        [base64.b64encode(image.data).decode(), image.path.name, mime],
    )
    page.dispatch_event("#drop-zone", "dragover", {"dataTransfer": transfer})
    page.dispatch_event("#drop-zone", "drop", {"dataTransfer": transfer})


def wait_done(page: Any, count: int) -> None:
    page.wait_for_function(
        "n => document.querySelectorAll('#uploads li.done, #uploads li.failed').length >= n",
        arg=count,
        timeout=90_000,
    )


def copy_urls(item: Any) -> list[str]:
    return [b.get_attribute("data-url") for b in item.query_selector_all("button.copy")]


def check_image_url(http: httpx.Client, url: str) -> None:
    response = http.get(url)
    assert response.status_code == 200, (url, response.status_code, response.text[:200])
    fmt = url.split("?")[0].rsplit(".", 1)[1]
    assert response.headers["content-type"] == FORMAT_TYPES.get(fmt, f"image/{fmt}"), url
    assert len(response.content) > 100


def test_anonymous_upload_links_and_viewer(server: RunningServer, corpus: list[CorpusImage],
                                           context: Any, artifacts: Path) -> None:
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    page = context.new_page()
    errors = watch_errors(page)
    response = page.goto(server.url + "/")
    assert response is not None and response.status == 200
    assert "anonymous" in page.inner_text("#key-status")
    assert page.is_visible("#key-input") and page.is_hidden("#key-forget")
    page.screenshot(path=artifacts / "upload-empty.png", full_page=True)

    picked = corpus_file(corpus, "photo-ladybird-2560x1600.jpg")
    dropped = corpus_file(corpus, "photo-wood-960x1280.webp")
    page.set_input_files("#file-input", str(picked.path))
    drop_file(page, dropped, "image/webp")
    wait_done(page, 2)
    items = page.query_selector_all("#uploads li.upload")
    assert len(items) == 2
    assert all("done" in (i.get_attribute("class") or "") for i in items), \
        [i.inner_text(".state") for i in items]

    # Anonymous: the expiry and the API's upgrade message are shown.
    assert page.is_visible("#upgrade")
    assert "API key" in page.inner_text("#upgrade")
    assert page.get_attribute("#upgrade a", "href").endswith("/v1/upgrade")
    for item in items:
        assert "Deleted on" in item.query_selector(".expiry").inner_text()
        assert item.query_selector("progress").evaluate("p => p.value") == 100
    # The thumbnails come from the CDN (not the local preview) and really loaded.
    page.wait_for_function(
        "() => [...document.querySelectorAll('#uploads .thumb')].every("
        "img => img.complete && img.naturalWidth > 0 && img.src.includes('size=s'))",
        timeout=60_000,
    )
    page.screenshot(path=artifacts / "upload-done.png", full_page=True)
    page.set_viewport_size({"width": 375, "height": 740})
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    page.screenshot(path=artifacts / "upload-done-phone.png", full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})

    by_name = {i.query_selector(".name").inner_text(): i for i in items}
    item = by_name[picked.path.name]
    urls = copy_urls(item)
    viewer_url, original = item.get_attribute("data-url"), item.get_attribute("data-src")
    assert urls[:2] == [viewer_url, original]
    cdn_urls = urls[2:]
    base = original.rsplit(".", 1)[0]
    assert cdn_urls == [f"{base}.{fmt}?size={size}" for size in "sml"
                        for fmt in ("jpeg", "png", "webp", "avif")]
    with httpx.Client(timeout=60) as http:
        for url in [original, *cdn_urls, *copy_urls(by_name[dropped.path.name])[1:]]:
            check_image_url(http, url)
        viewer = http.get(viewer_url)
        assert viewer.status_code == 200 and viewer.headers["content-type"].startswith("text/html")

    # A copy button really puts its URL on the clipboard.
    button = item.query_selector_all("button.copy")[5]
    button.click()
    page.wait_for_function("b => b.textContent === 'Copied'", arg=button)
    assert page.evaluate("navigator.clipboard.readText()") == button.get_attribute("data-url")
    # Where the async clipboard API is missing (plain http on a LAN address), the fallback
    # (a selected textarea and execCommand) copies instead.
    page.evaluate("() => Object.defineProperty(navigator, 'clipboard', {value: undefined})")
    other = item.query_selector_all("button.copy")[9]
    other.click()
    page.wait_for_function("b => b.textContent === 'Copied'", arg=other)
    reader = context.new_page()
    reader.goto(server.url + "/")
    assert reader.evaluate("navigator.clipboard.readText()") == other.get_attribute("data-url")
    reader.close()

    # The viewer page, opened from the link as a person would.
    with context.expect_page() as opened:
        item.query_selector(".links a").click()
    viewer_page = opened.value
    viewer_errors = watch_errors(viewer_page)
    viewer_page.wait_for_load_state("load")
    assert viewer_page.url == viewer_url
    check_viewer(viewer_page, picked, server)
    viewer_page.screenshot(path=artifacts / "viewer.png", full_page=True)
    assert errors == [] and viewer_errors == []


def check_viewer(page: Any, image: CorpusImage, server: RunningServer) -> None:
    """The image loaded, the srcset offers every size, and the unfurl tags point at an image."""
    page.wait_for_function("() => { const i = document.querySelector('main img');"
                           " return i && i.complete && i.naturalWidth > 0; }", timeout=60_000)
    srcsets = " ".join(page.eval_on_selector_all(
        "img[srcset], source[srcset]", "els => els.map(e => e.getAttribute('srcset'))"))
    for size in "sml":
        assert f"size={size}" in srcsets
    meta = page.eval_on_selector_all(
        "meta[property], meta[name]",
        "els => Object.fromEntries(els.map(e => [e.getAttribute('property') || "
        "e.getAttribute('name'), e.getAttribute('content')]))")
    assert meta.get("og:title") and meta.get("og:url") == page.url
    assert meta.get("twitter:card") == "summary_large_image"
    for key in ("og:image", "twitter:image"):
        assert meta.get(key, "").startswith("http"), key
        with httpx.Client(timeout=60) as http:
            check_image_url(http, meta[key])


def test_viewer_is_responsive_and_404s(server: RunningServer, corpus: list[CorpusImage],
                                       browser: Any, artifacts: Path) -> None:
    image = corpus_file(corpus, "photo-wood-portrait-1440x1920.jpg")
    with httpx.Client(base_url=server.url, timeout=60) as http:
        public = http.post("/v1/upload", files={"file": (image.path.name, image.data)})
        private = http.post("/v1/upload", files={"file": (image.path.name, image.data)},
                            data={"public": "false"})
    assert public.status_code == 201 and private.status_code == 201, (public.text, private.text)

    widths = {}
    for label, viewport in (("phone", {"width": 375, "height": 740}),
                            ("desktop", {"width": 1280, "height": 900})):
        ctx = browser.new_context(viewport=viewport, device_scale_factor=1)
        try:
            page = ctx.new_page()
            page.goto(public.json()["url"])
            check_viewer(page, image, server)
            widths[label] = page.eval_on_selector("main img", "i => i.naturalWidth")
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{label}: page is {overflow}px wider than the screen"
            page.screenshot(path=artifacts / f"viewer-{label}.png", full_page=True)
        finally:
            ctx.close()
    # The browser picked a smaller rendition for the phone: the srcset does its job.
    assert widths["phone"] < widths["desktop"] <= image.width

    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        for media_id in (private.json()["id"], "A" * 12):
            response = page.goto(f"{server.url}/{media_id}")
            assert response is not None and response.status == 404
            assert "not found" in page.inner_text("body").lower()
        page.screenshot(path=artifacts / "viewer-404.png", full_page=True)
    finally:
        ctx.close()


def test_api_key_is_kept_and_used(server: RunningServer, corpus: list[CorpusImage],
                                  context: Any, artifacts: Path, tmp_path: Path) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        created = http.post("/v1/keys", json={"email": f"page-{uuid.uuid4().hex[:10]}@example.com"})
    assert created.status_code == 201, created.text
    key = created.json()["key"]

    page = context.new_page()
    errors = watch_errors(page)
    page.goto(server.url + "/")
    page.fill("#key-input", key)
    page.click("#key-form button[type=submit]")
    page.wait_for_function(KEY_IN_USE)
    page.reload()  # pasted once: the key survives a reload (localStorage)
    page.wait_for_function(KEY_IN_USE)
    assert page.is_hidden("#key-form") and page.is_visible("#key-forget")

    image = corpus_file(corpus, "photo-yellowflower-1920x1080.jpg")
    not_image = tmp_path / "notes.txt"
    not_image.write_text("not an image\n")
    page.click("#options summary")
    page.fill("#opt-tags", "browser,flower")
    page.set_input_files("#file-input", [str(image.path), str(not_image)])
    wait_done(page, 2)
    page.screenshot(path=artifacts / "upload-with-key.png", full_page=True)

    done = page.query_selector("#uploads li.done")
    failed = page.query_selector("#uploads li.failed")
    assert done is not None and failed is not None
    assert "supported image" in failed.query_selector(".state").inner_text()
    assert page.is_hidden("#upgrade")  # no anonymous upgrade banner with a key
    page.wait_for_function("() => document.querySelector('#key-status').textContent"
                           ".includes('99 of 100 uploads left')")  # refreshed after the uploads
    with httpx.Client(base_url=server.url, timeout=30,
                      headers={"Authorization": f"Bearer {key}"}) as http:
        media = http.get(f"/v1/media/{done.get_attribute('data-id')}").json()
    assert media["editable"] is True and media["tags"] == ["browser", "flower"]

    page.click("#key-forget")
    assert "anonymous" in page.inner_text("#key-status")
    assert page.is_visible("#key-input") and page.is_hidden("#key-forget")
    assert page.evaluate("localStorage.getItem('imgpro.apiKey')") is None
    # The only console error allowed is the refused non-image upload (HTTP 400 in the log).
    assert [e for e in errors if "400" not in e] == []


def test_activation_page_button_activates_in_a_browser(server: RunningServer, context: Any,
                                                        artifacts: Path) -> None:
    """The emailed link in Chromium: loading it changes nothing, pressing its button (a form
    POST that carries the browser's own Origin, under the page's CSP) activates the key."""
    from tests.api.conftest import ApiServer

    api = ApiServer(server, database_url=f"sqlite+aiosqlite:///{server.data_dir / 'imgpro.db'}")
    try:
        email = f"browser-{uuid.uuid4().hex[:10]}@example.com"
        api.new_key(email)
        pending = api.new_key(email)
        link = api.links_to(email)[-1]
        page = context.new_page()
        errors = watch_errors(page)
        page.goto(link)
        page.screenshot(path=artifacts / "activate-key.png", full_page=True)
        assert api.request("GET", "/v1/usage", key=pending["key"]).status_code == 401
        with page.expect_navigation():
            page.click("form button[type=submit]")
        assert "is active" in page.inner_text("main")
        assert api.request("GET", "/v1/usage", key=pending["key"]).status_code == 200
        assert errors == []
    finally:
        api.close()
