"""The media library page in a real headless Chromium against a real server, as a person uses it.

Paste a key (on the library; the upload page then knows it too), upload three images through the
upload page with tags, see them in the library, filter by a tag and by name, edit one's tags,
batch-move two to a namespace, delete one, and watch the usage meter follow; then the quota
error's upgrade action as a button, the cursor's further pages on scroll, the keyboard, and a
375 px screen. The images are made here with Pillow. Screenshots go to the artifacts folder.
"""

from __future__ import annotations

import io
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, ImageDraw

from tests.browser.test_pages import KEY_IN_USE, wait_done, watch_errors
from tests.conftest import RunningServer, running_server

IMAGES = {  # name: (format, size, colour, tags)
    "sunset-beach.jpg": ("JPEG", (900, 600), "orange", "trip,beach"),
    "forest-path.png": ("PNG", (640, 640), "forestgreen", "trip,beach"),
    "city-night.jpg": ("JPEG", (1000, 500), "midnightblue", "trip,city"),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(tmp_path_factory.mktemp("library") / "data") as running:
        yield running


def make_image(path: Path, fmt: str, size: tuple[int, int], colour: str) -> Path:
    image = Image.new("RGB", size, colour)
    draw = ImageDraw.Draw(image)
    for x in range(0, size[0], 80):  # some structure, so encoders have work to do
        draw.line([(x, 0), (size[0] - x, size[1])], fill="white", width=6)
    out = io.BytesIO()
    image.save(out, format=fmt)
    path.write_bytes(out.getvalue())
    return path


def new_key(server: RunningServer) -> dict[str, Any]:
    created = httpx.post(f"{server.url}/v1/keys", timeout=30,
                         json={"email": f"library-{uuid.uuid4().hex[:10]}@example.com"})
    assert created.status_code == 201, created.text
    return dict(created.json())


def api_get(server: RunningServer, key: str, path: str, **params: Any) -> Any:
    response = httpx.get(f"{server.url}{path}", params=params, timeout=30,
                         headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    return response.json()


def use_up_the_monthly_quota(server: RunningServer, key_id: str) -> None:
    """As if 100 uploads happened this month (the server's SQLite database, written directly)."""
    month = datetime.now(UTC).strftime("%Y-%m")
    with sqlite3.connect(server.data_dir / "imgpro.db") as db:
        (team,) = db.execute("SELECT team_id FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
        db.execute("DELETE FROM usage_months WHERE team_id = ?", (team,))
        db.execute("INSERT INTO usage_months (team_id, month, uploads) VALUES (?, ?, 100)",
                   (team, month))


def card(page: Any, name: str) -> Any:
    return page.locator("#grid li.card", has=page.locator(".name", has_text=name))


def wait_cards(page: Any, names: list[str]) -> None:
    """The grid shows exactly these images (in any order), each thumbnail loaded from the CDN."""
    page.wait_for_function(
        """names => {
            const cards = [...document.querySelectorAll('#grid li.card')];
            const shown = cards.map(c => c.querySelector('.name').textContent).sort();
            return JSON.stringify(shown) === JSON.stringify([...names].sort()) &&
                cards.every(c => { const i = c.querySelector('img.thumb');
                    return i.complete && i.naturalWidth > 0; });
        }""", arg=names, timeout=60_000)


def uploads_used(page: Any) -> int:
    page.wait_for_function("() => document.querySelector('#usage').dataset.uploadsUsed")
    return int(page.get_attribute("#usage", "data-uploads-used"))


def storage_used(page: Any) -> int:
    return int(page.get_attribute("#usage", "data-storage-used"))


def test_a_person_manages_their_images(server: RunningServer, context: Any, artifacts: Path,
                                       tmp_path: Path) -> None:
    created = new_key(server)
    key = created["key"]
    page = context.new_page()
    errors = watch_errors(page)

    # No key yet: the library asks for one and shows nothing else.
    response = page.goto(server.url + "/library")
    assert response is not None and response.status == 200
    assert page.is_visible("#key-input") and page.is_hidden("#library")
    page.screenshot(path=artifacts / "library-no-key.png", full_page=True)
    page.fill("#key-input", key)
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("#library", state="visible")
    page.wait_for_function("() => document.querySelector('#usage').dataset.uploadsUsed === '0'")
    # The usage meter and the first page are two requests: wait for the page's to end.
    page.wait_for_function(
        "() => document.querySelector('#grid-status').innerText !== 'Loading...'")
    assert page.inner_text("#grid-status") == "No images match."

    # The upload page uses the key saved on the library (one localStorage name).
    page.goto(server.url + "/")
    page.wait_for_function(KEY_IN_USE)
    files = {name: make_image(tmp_path / name, fmt, size, colour)
             for name, (fmt, size, colour, _tags) in IMAGES.items()}
    page.click("#options summary")
    page.fill("#opt-tags", "trip,beach")
    page.set_input_files("#file-input", [str(files["sunset-beach.jpg"]),
                                         str(files["forest-path.png"])])
    wait_done(page, 2)
    page.fill("#opt-tags", "trip,city")
    page.set_input_files("#file-input", str(files["city-night.jpg"]))
    wait_done(page, 3)
    assert page.locator("#uploads li.done").count() == 3

    # The library shows them, newest first, with CDN thumbnails (size s, srcset s and m).
    page.click("nav a[href='/library']")
    wait_cards(page, list(IMAGES))
    names = page.eval_on_selector_all("#grid li.card .name", "els => els.map(e => e.textContent)")
    assert names[0] == "city-night.jpg"
    thumb = card(page, "city-night.jpg").locator("img.thumb")
    assert "size=s" in thumb.get_attribute("src") and "size=m" in thumb.get_attribute("srcset")
    assert thumb.get_attribute("loading") == "lazy"
    assert uploads_used(page) == 3
    storage_after_uploads = storage_used(page)
    assert storage_after_uploads > 0
    page.screenshot(path=artifacts / "library-grid.png", full_page=True)

    # Filter by a tag, by both tags in "any" mode, and by name as one types.
    page.fill("#filter-tags", "city")
    wait_cards(page, ["city-night.jpg"])
    page.fill("#filter-tags", "city,beach")
    wait_cards(page, [])
    page.select_option("#filter-tag-mode", "any")
    wait_cards(page, list(IMAGES))
    page.fill("#filter-tags", "")
    page.type("#filter-search", "FOREST", delay=30)
    wait_cards(page, ["forest-path.png"])
    page.screenshot(path=artifacts / "library-search.png", full_page=True)
    page.fill("#filter-search", "")
    wait_cards(page, list(IMAGES))

    # One image's details: facts, every CDN URL with a copy button; edit its tags in place.
    card(page, "forest-path.png").locator("button.open").click()
    page.wait_for_selector("#details[open]")
    assert page.inner_text("#details-title") == "forest-path.png"
    facts = page.inner_text("#details-facts")
    assert "640 \u00d7 640 px" in facts and "trip, beach" in facts
    copies = page.eval_on_selector_all("#details-urls button.copy",
                                       "bs => bs.map(b => b.dataset.url)")
    assert len(copies) == 16 and any(u.endswith(".avif?size=l") for u in copies)
    with httpx.Client(timeout=60) as http:
        assert http.get(copies[0]).status_code == 200
    page.fill("#edit-tags", "forest,green")
    page.fill("#edit-metadata", '{"author": "Ann"}')
    page.click("#edit-form button[type=submit]")
    page.wait_for_function("() => document.querySelector('#edit-status').textContent === 'Saved.'")
    assert "forest, green" in page.inner_text("#details-facts")
    page.screenshot(path=artifacts / "library-details.png")
    page.keyboard.press("Escape")
    page.wait_for_selector("#details", state="hidden")
    forest_id = card(page, "forest-path.png").get_attribute("data-id")
    forest = api_get(server, key, f"/v1/media/{forest_id}")
    assert forest["tags"] == ["forest", "green"] and forest["author"] == "Ann"
    assert card(page, "forest-path.png").get_attribute("data-tags") == "forest,green"

    # Select two, move them to a namespace (the batch API), then filter on it.
    for name in ("sunset-beach.jpg", "city-night.jpg"):
        card(page, name).locator("input.select").check()
    assert page.inner_text("#batch-count") == "2 selected"
    page.fill("#batch-namespace", "holiday")
    page.click("#batch-namespace-form button[type=submit]")
    page.wait_for_function(
        "() => document.querySelector('#action-status').textContent === 'Updated 2 images.'")
    page.wait_for_function("() => [...document.querySelectorAll('#filter-namespace option')]"
                           ".some(o => o.value === 'holiday' && o.textContent === 'holiday (2)')")
    page.select_option("#filter-namespace", "holiday")
    wait_cards(page, ["sunset-beach.jpg", "city-night.jpg"])
    moved = api_get(server, key, "/v1/media", namespace="holiday")["items"]
    assert {m["name"] for m in moved} == {"sunset-beach.jpg", "city-night.jpg"}
    page.screenshot(path=artifacts / "library-namespace.png", full_page=True)

    # Delete one (with a confirmation step); the storage part of the meter goes down.
    city = card(page, "city-night.jpg")
    city_id = city.get_attribute("data-id")
    city.locator("button.open").click()
    page.wait_for_selector("#details[open]")
    page.click("#delete-one")
    assert page.is_visible("#delete-confirm") and page.is_hidden("#delete-one")
    page.click("#delete-yes")
    page.wait_for_selector("#details", state="hidden")
    wait_cards(page, ["sunset-beach.jpg"])
    page.wait_for_function("before => +document.querySelector('#usage').dataset.storageUsed"
                           " < before", arg=storage_after_uploads)
    city_bytes = next(m["filesize"] for m in moved if m["id"] == city_id)
    assert storage_used(page) == storage_after_uploads - city_bytes
    assert uploads_used(page) == 3  # a month's uploads stay counted after a delete
    gone = httpx.get(f"{server.url}/v1/media/{city_id}", timeout=30,
                     headers={"Authorization": f"Bearer {key}"})
    assert gone.status_code == 404

    # The month's quota is used up: an upload from the library shows the API's upgrade action.
    page.select_option("#filter-namespace", "")
    wait_cards(page, ["sunset-beach.jpg", "forest-path.png"])
    use_up_the_monthly_quota(server, created["key_id"])
    page.set_input_files("#library-file", str(files["city-night.jpg"]))
    page.wait_for_selector("#notice", state="visible")
    assert "quota" in page.inner_text("#notice-text").lower()
    action = page.locator("#notice-action")
    assert action.is_visible() and action.inner_text().startswith("Upgrade to")
    assert "/v1/upgrade?token=" in action.get_attribute("href")
    page.wait_for_function(
        "() => document.querySelector('#usage-uploads').textContent.startsWith('100 of 100')")
    page.screenshot(path=artifacts / "library-quota.png", full_page=True)
    with httpx.Client(timeout=30) as http:
        assert http.get(action.get_attribute("href")).status_code == 200

    # Readable at 375 px: nothing wider than the screen, the grid in two columns.
    page.set_viewport_size({"width": 375, "height": 740})
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    page.screenshot(path=artifacts / "library-phone.png", full_page=True)
    card(page, "forest-path.png").locator("button.open").click()
    page.wait_for_selector("#details[open]")
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    page.screenshot(path=artifacts / "library-details-phone.png")
    page.keyboard.press("Escape")

    # The only console errors allowed are the refused upload's (HTTP 413 in the log).
    assert [e for e in errors if "413" not in e] == []


def test_keyboard_and_further_pages(server: RunningServer, context: Any, artifacts: Path) -> None:
    """More images than a page: the cursor's next pages come as one scrolls. And everything is
    reachable with the keyboard: select with Space, open with Enter, close with Escape."""
    created = new_key(server)
    key = created["key"]
    headers = {"Authorization": f"Bearer {key}"}
    small = io.BytesIO()
    Image.new("RGB", (48, 32), "teal").save(small, format="PNG")
    with httpx.Client(base_url=server.url, timeout=30, headers=headers) as http:
        for i in range(55):
            uploaded = http.post("/v1/upload",
                                 files={"file": (f"tile-{i:02}.png", small.getvalue())})
            assert uploaded.status_code == 201, uploaded.text
    page = context.new_page()
    errors = watch_errors(page)
    page.goto(server.url + "/")
    page.evaluate("k => localStorage.setItem('imgpro.apiKey', k)", key)
    page.goto(server.url + "/library")
    page.wait_for_function("() => document.querySelectorAll('#grid li.card').length === 48")
    assert page.is_visible("#load-more")
    page.locator("#sentinel").scroll_into_view_if_needed()
    page.wait_for_function("() => document.querySelectorAll('#grid li.card').length === 55")
    page.wait_for_selector("#load-more", state="hidden")
    names = page.eval_on_selector_all("#grid li.card .name", "els => els.map(e => e.textContent)")
    assert names == [f"tile-{i:02}.png" for i in reversed(range(55))]  # newest first, no repeats

    page.focus("#grid li.card:first-child input.select")
    page.keyboard.press("Space")
    assert page.inner_text("#batch-count") == "1 selected"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.classList.contains('open')")
    page.keyboard.press("Enter")
    page.wait_for_selector("#details[open]")
    assert page.inner_text("#details-title") == "tile-54.png"
    page.keyboard.press("Escape")
    page.wait_for_selector("#details", state="hidden")
    page.screenshot(path=artifacts / "library-many.png")

    # The rest of the batch bar on two images: add a tag, make private, delete (confirmed).
    page.locator("#grid li.card").nth(1).locator("input.select").check()
    assert page.inner_text("#batch-count") == "2 selected"
    picked = page.eval_on_selector_all("#grid li.card.selected", "cs => cs.map(c => c.dataset.id)")

    def status_is(text: str) -> None:
        page.wait_for_function("t => document.querySelector('#action-status').textContent === t",
                               arg=text)

    def reselect() -> None:  # a batch action reloads the grid and clears the selection
        page.wait_for_function("() => document.querySelectorAll('#grid li.card').length >= 48")
        for media_id in picked:
            page.locator(f"#grid li.card[data-id='{media_id}'] input.select").check()

    page.fill("#batch-tags", "sale")
    page.select_option("#batch-tag-mode", "add")
    page.click("#batch-tags-form button[type=submit]")
    status_is("Updated 2 images.")
    reselect()
    page.click("#batch-private")
    status_is("Updated 2 images.")
    for media_id in picked:
        media = api_get(server, key, f"/v1/media/{media_id}")
        assert media["tags"] == ["sale"] and media["public"] is False
    reselect()
    page.click("#batch-delete")
    assert page.inner_text("#batch-confirm-count") == "2 images"
    page.click("#batch-confirm-yes")
    status_is("Deleted 2 images.")
    page.wait_for_function("() => document.querySelector('#usage').dataset.uploadsUsed === '55'")
    assert len(api_get(server, key, "/v1/media", limit=100)["items"]) == 53
    assert errors == []
