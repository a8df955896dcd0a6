"""Media: list (filters, cursor), get, PATCH, DELETE, batch, usage, namespaces, team isolation,
the viewer page, the retention sweeper and the JSON shape of routing errors."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.api.conftest import ApiServer, fresh_ip, tiny_png


def _upload(api: ApiServer, key: str, **fields: str) -> dict[str, Any]:
    response = api.upload(tiny_png(seed=len(fields)), key=key, **fields)
    assert response.status_code == 201, response.text
    return dict(response.json())


def _list(api: ApiServer, key: str, **params: Any) -> dict[str, Any]:
    response = api.request("GET", "/v1/media", key=key, params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _original(api: ApiServer, media: dict[str, Any]) -> Any:
    team_hash, name = media["src"].rsplit("/", 2)[-2:]
    return api.data_dir / "originals" / team_hash / name.split(".")[0]


def test_list_filters(api: ApiServer) -> None:
    key = api.new_key()["key"]
    a = _upload(api, key, tags="red,big", namespace="shop")
    b = _upload(api, key, tags="red", namespace="shop")
    c = _upload(api, key, tags="blue,big", namespace="blog")
    d = _upload(api, key)

    def ids(**params: Any) -> list[str]:
        return [item["id"] for item in _list(api, key, **params)["items"]]

    assert ids() == [d["id"], c["id"], b["id"], a["id"]]  # newest first
    assert ids(namespace="shop") == [b["id"], a["id"]]
    assert ids(tags="red") == [b["id"], a["id"]]
    assert ids(tags="red,big") == [a["id"]]
    assert ids(tags="red,big", tag_mode="all") == [a["id"]]
    assert ids(tags="red,blue", tag_mode="any") == [c["id"], b["id"], a["id"]]
    assert ids(tags="big", namespace="blog") == [c["id"]]
    assert ids(namespace="nothing-here") == []
    item = _list(api, key, namespace="blog")["items"][0]
    assert set(item) >= {"id", "name", "url", "src", "width", "height", "filesize", "tags",
                         "namespace", "public", "created_at"}


def test_list_search_by_name(api: ApiServer) -> None:
    """``search`` (an imgpro extension the library page types into): part of the name, any
    case, ``%`` and ``_`` taken literally, combined with the other filters and the cursor."""
    key = api.new_key()["key"]
    beach = _upload(api, key, name="Beach Sunset.jpg", tags="sea")
    sunny = _upload(api, key, name="sunset_2.png")
    _upload(api, key, name="forest.jpg", tags="sea")
    percent = _upload(api, key, name="100% done")

    def ids(**params: Any) -> list[str]:
        return [item["id"] for item in _list(api, key, **params)["items"]]

    assert ids(search="SUNSET") == [sunny["id"], beach["id"]]
    assert ids(search="sunset", tags="sea") == [beach["id"]]
    assert ids(search="t_2") == [sunny["id"]]
    assert ids(search="%") == [percent["id"]]
    assert ids(search="  ") == ids()
    page = _list(api, key, search="sunset", limit=1)
    assert page["has_more"] is True
    assert ids(search="sunset", cursor=page["cursor"]) == [beach["id"]]
    too_long = api.request("GET", "/v1/media", key=key, params={"search": "x" * 101})
    assert too_long.status_code == 422 and list(too_long.json()["errors"]) == ["search"]


def test_list_orders_by_custom_date(api: ApiServer) -> None:
    key = api.new_key()["key"]
    old = _upload(api, key, date="2001-01-01")
    new = _upload(api, key, date="2030-01-01")
    plain = _upload(api, key)
    assert [i["id"] for i in _list(api, key)["items"]] == [new["id"], plain["id"], old["id"]]


def test_cursor_pagination_is_stable_under_inserts(api: ApiServer) -> None:
    key = api.new_key()["key"]
    uploaded = [_upload(api, key, name=f"n{i}")["id"] for i in range(7)]
    expected = list(reversed(uploaded))
    page = _list(api, key, limit=3)
    assert page["has_more"] is True and len(page["items"]) == 3
    seen = [i["id"] for i in page["items"]]
    # New media arriving between pages must neither repeat nor push items out of the walk.
    _upload(api, key, name="late1")
    while page["has_more"]:
        page = _list(api, key, limit=3, cursor=page["cursor"])
        seen += [i["id"] for i in page["items"]]
        _upload(api, key, name="late2")
    assert seen == expected
    assert page["cursor"] is None


def test_list_parameter_errors(api: ApiServer) -> None:
    key = api.new_key()["key"]
    for params in ({"limit": 0}, {"limit": 101}, {"limit": "x"}, {"tag_mode": "some"},
                   {"cursor": "!!!"}, {"cursor": "eyJpZCI6MTIzfQ"}, {"namespace": "A"}):
        response = api.request("GET", "/v1/media", key=key, params=params)
        assert response.status_code == 422, params
        assert response.json()["error"] == "validation_error"
        assert list(response.json()["errors"]) == [next(iter(params))]
    assert len(_list(api, key, limit=100)["items"]) == 0
    assert api.request("GET", "/v1/media").status_code == 401


def test_get_public_and_private(api: ApiServer) -> None:
    key = api.new_key()["key"]
    public = _upload(api, key, author="Ann")
    private = _upload(api, key, public="false")
    mine = api.request("GET", f"/v1/media/{private['id']}", key=key)
    assert mine.status_code == 200 and mine.json()["editable"] is True
    anonymous = api.request("GET", f"/v1/media/{public['id']}")
    assert anonymous.status_code == 200
    assert anonymous.json()["author"] == "Ann"  # metadata at the top level
    assert anonymous.json()["editable"] is False
    hidden = api.request("GET", f"/v1/media/{private['id']}")
    assert hidden.status_code == 404 and hidden.json()["error"] == "not_found"
    assert api.request("GET", "/v1/media/doesnotexist").status_code == 404


def test_patch_every_field(api: ApiServer) -> None:
    key = api.new_key()["key"]
    media = _upload(api, key, tags="a", namespace="one", author="Old", old_field="x")
    response = api.request("PATCH", f"/v1/media/{media['id']}", key=key, json={
        "name": "Updated Name", "tags": "new-tag,another", "namespace": "new-project",
        "public": False, "date": "2025-06-15", "external_id": "ext-456",
        "metadata": {"author": "Updated Author", "old_field": None, "added": [1, 2]},
    })
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "Updated Name"
    assert body["tags"] == ["new-tag", "another"]
    assert body["namespace"] == "new-project"
    assert body["public"] is False
    assert body["date"] == 1749945600
    assert body["external_id"] == "ext-456"
    assert body["author"] == "Updated Author" and body["added"] == [1, 2]
    assert "old_field" not in body
    assert api.request("GET", f"/v1/media/{media['id']}", key=key).json() == body
    # Clearing: namespace and date to null; an empty body changes nothing.
    cleared = api.request("PATCH", f"/v1/media/{media['id']}", key=key,
                          json={"namespace": None, "date": None}).json()
    assert cleared["namespace"] is None and "date" not in cleared
    same = api.request("PATCH", f"/v1/media/{media['id']}", key=key, json={})
    assert same.status_code == 200 and same.json() == cleared


def test_patch_errors(api: ApiServer) -> None:
    key = api.new_key()["key"]
    media = _upload(api, key, external_id="taken")
    other = _upload(api, key)
    dup = api.request("PATCH", f"/v1/media/{other['id']}", key=key, json={"external_id": "taken"})
    assert dup.status_code == 409 and dup.json()["media"]["id"] == media["id"]
    bad = api.request("PATCH", f"/v1/media/{other['id']}", key=key,
                      json={"tags": ["x"] * 3 + [f"t{i}" for i in range(10)], "public": "nah"})
    assert bad.status_code == 422 and set(bad.json()["errors"]) == {"tags", "public"}
    assert api.request("PATCH", "/v1/media/nope", key=key, json={"name": "x"}).status_code == 404
    assert api.request("PATCH", f"/v1/media/{other['id']}", json={"name": "x"}).status_code == 401
    malformed = api.request("PATCH", f"/v1/media/{other['id']}", key=key, content=b"{",
                            headers={"Content-Type": "application/json"})
    assert malformed.status_code == 422 and malformed.json()["error"] == "validation_error"


def test_delete_is_soft_and_stops_serving(api: ApiServer) -> None:
    key = api.new_key()["key"]
    media = _upload(api, key, external_id="gone", namespace="trash")
    assert _original(api, media).exists()
    rendition = media["src"].rsplit(".", 1)[0] + ".webp?size=s"
    assert httpx.get(media["src"]).status_code == 200
    assert httpx.get(rendition).status_code == 200  # now cached by the CDN
    before = api.request("GET", "/v1/usage", key=key).json()
    response = api.request("DELETE", f"/v1/media/{media['id']}", key=key)
    assert response.status_code == 200 and response.json() == {"deleted": True}
    assert api.request("GET", f"/v1/media/{media['id']}", key=key).status_code == 404
    assert not _original(api, media).exists()  # the CDN has nothing left to serve
    assert httpx.get(media["src"]).status_code == 404
    assert httpx.get(rendition).status_code == 404  # cached renditions were purged
    assert api.sql("SELECT deleted_at IS NOT NULL FROM media WHERE id = :i",
                   i=media["id"]) == [(True,)]  # soft: the row stays
    after = api.request("GET", "/v1/usage", key=key).json()
    assert after["storage_used_bytes"] == before["storage_used_bytes"] - media["filesize"]
    assert after["uploads_used"] == before["uploads_used"]  # uploads are not given back
    assert api.request("DELETE", f"/v1/media/{media['id']}", key=key).status_code == 404
    # The external_id is free again.
    assert api.upload(key=key, external_id="gone").status_code == 201


def test_batch_update(api: ApiServer) -> None:
    key = api.new_key()["key"]
    a = _upload(api, key, tags="keep,drop")
    b = _upload(api, key, tags="keep")

    def batch(update: dict[str, Any], ids: list[str] | None = None) -> httpx.Response:
        return api.request("PATCH", "/v1/media/batch", key=key,
                           json={"ids": ids or [a["id"], b["id"]], "update": update})

    response = batch({"tags": "new", "tag_mode": "add", "namespace": "my-project", "public": False})
    assert response.status_code == 200 and response.json() == {"updated": 2}
    got = {m["id"]: m for m in _list(api, key)["items"]}
    assert got[a["id"]]["tags"] == ["keep", "drop", "new"]
    assert got[b["id"]]["tags"] == ["keep", "new"]
    assert {m["namespace"] for m in got.values()} == {"my-project"}
    assert {m["public"] for m in got.values()} == {False}
    assert batch({"tags": "drop,new", "tag_mode": "remove"}).json() == {"updated": 2}
    assert [m["tags"] for m in _list(api, key)["items"]] == [["keep"], ["keep"]]
    assert batch({"tags": "x,y"}).json() == {"updated": 2}  # replace is the default
    assert [m["tags"] for m in _list(api, key)["items"]] == [["x", "y"], ["x", "y"]]
    too_many = batch({"tags": ",".join(f"t{i}" for i in range(9)), "tag_mode": "add"})
    assert too_many.status_code == 422
    assert [m["tags"] for m in _list(api, key)["items"]] == [["x", "y"], ["x", "y"]]  # atomic
    for body in ({"ids": [], "update": {"public": True}},
                 {"ids": [f"id{i}" for i in range(101)], "update": {"public": True}},
                 {"ids": [a["id"]], "update": {}},
                 {"ids": [a["id"]], "update": {"name": "not batchable"}},
                 {"ids": [a["id"]], "update": {"tag_mode": "merge", "tags": "x"}}):
        assert api.request("PATCH", "/v1/media/batch", key=key, json=body).status_code == 422
    assert batch({"public": True}, ids=[a["id"], "unknownid123"]).json() == {"updated": 1}


def test_batch_delete(api: ApiServer) -> None:
    key = api.new_key()["key"]
    a, b, c = (_upload(api, key, namespace="old-project") for _ in range(3))
    d = _upload(api, key, namespace="keep")
    response = api.request("DELETE", "/v1/media/batch", key=key, json={"ids": [a["id"], b["id"]]})
    assert response.status_code == 200 and response.json() == {"deleted": 2}
    by_ns = api.request("DELETE", "/v1/media/batch", key=key, json={"namespace": "old-project"})
    assert by_ns.json() == {"deleted": 1}
    assert [m["id"] for m in _list(api, key)["items"]] == [d["id"]]
    assert not any(_original(api, m).exists() for m in (a, b)), "an ids batch removes at once"
    # A namespace delete leaves the originals to the sweeper, which it wakes at once.
    deadline = time.monotonic() + 30
    while _original(api, c).exists():
        assert time.monotonic() < deadline, "the sweeper did not remove the namespace's original"
        time.sleep(0.05)
    assert _original(api, d).exists()
    for body in ({}, {"ids": "abc"}, {"ids": [a["id"]], "namespace": "keep"}, {"namespace": ""}):
        assert api.request("DELETE", "/v1/media/batch", key=key, json=body).status_code == 422


def test_team_isolation(api: ApiServer) -> None:
    ours = api.new_key()["key"]
    theirs = api.new_key()["key"]
    public = _upload(api, ours, namespace="secret", external_id="e1")
    private = _upload(api, ours, namespace="secret", public="false")
    # A public image is public to them too (read-only); our private one does not exist for them.
    seen = api.request("GET", f"/v1/media/{public['id']}", key=theirs)
    assert seen.status_code == 200
    assert seen.json()["id"] == public["id"] and seen.json()["editable"] is False
    assert api.request("GET", f"/v1/media/{private['id']}", key=theirs).status_code == 404
    for media in (public, private):
        path = f"/v1/media/{media['id']}"
        assert api.request("PATCH", path, key=theirs, json={"name": "x"}).status_code == 404
        assert api.request("DELETE", path, key=theirs).status_code == 404
    ids = [public["id"], private["id"]]
    update = api.request("PATCH", "/v1/media/batch", key=theirs,
                         json={"ids": ids, "update": {"public": True, "tags": "pwned"}})
    assert update.json() == {"updated": 0}
    assert api.request("DELETE", "/v1/media/batch", key=theirs, json={"ids": ids}).json() == {
        "deleted": 0}
    assert api.request("DELETE", "/v1/media/batch", key=theirs,
                       json={"namespace": "secret"}).json() == {"deleted": 0}
    assert _list(api, theirs)["items"] == []
    assert _list(api, theirs, namespace="secret")["items"] == []
    assert api.request("GET", "/v1/namespaces", key=theirs).json() == {"namespaces": []}
    # Their external_id namespace is theirs: no 409 pointing at our media.
    assert api.upload(key=theirs, external_id="e1").status_code == 201
    # Ours is untouched.
    mine = {m["id"]: m for m in _list(api, ours)["items"]}
    assert set(mine) == set(ids)
    assert mine[private["id"]]["public"] is False and mine[private["id"]]["tags"] == []
    assert _original(api, public).exists() and _original(api, private).exists()


def test_usage_and_namespaces(api: ApiServer) -> None:
    key = api.new_key()["key"]
    sizes = {"my-project": 0, "blog-posts": 0}
    for namespace, count in (("my-project", 3), ("blog-posts", 1)):
        for _ in range(count):
            sizes[namespace] += _upload(api, key, namespace=namespace)["filesize"]
    plain = _upload(api, key)
    namespaces = api.request("GET", "/v1/namespaces", key=key).json()
    assert namespaces == {"namespaces": [
        {"namespace": "my-project", "count": 3, "storage_bytes": sizes["my-project"]},
        {"namespace": "blog-posts", "count": 1, "storage_bytes": sizes["blog-posts"]},
    ]}
    usage = api.request("GET", "/v1/usage", key=key).json()
    assert usage == {
        "plan": "free", "uploads_used": 5, "uploads_limit": 100, "uploads_remaining": 95,
        "storage_used_bytes": sum(sizes.values()) + plain["filesize"],
        "storage_limit_bytes": 5 * 1024**3, "resets_at": usage["resets_at"], "verified": False,
    }
    now = datetime.now(UTC)
    first_of_next = datetime(now.year + (now.month == 12), now.month % 12 + 1, 1, tzinfo=UTC)
    assert usage["resets_at"] == int(first_of_next.timestamp())
    last = api.upload(key=key)
    assert last.headers["X-Monthly-Uploads-Used"] == "6"
    assert last.headers["X-Storage-Used"] == str(usage["storage_used_bytes"] + len(tiny_png()))


def test_viewer_page(api: ApiServer) -> None:
    key = api.new_key()["key"]
    public = _upload(api, key, name="Sunset <b>over</b> sea")
    private = _upload(api, key, public="false")
    page = httpx.get(public["url"])
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "Sunset &lt;b&gt;over&lt;/b&gt; sea" in html and "<b>over</b>" not in html
    assert 'property="og:image"' in html and 'property="og:title"' in html
    assert 'name="twitter:card"' in html
    src_base = public["src"].rsplit(".", 1)[0]
    assert f"{src_base}.webp?size=s" in html and "srcset=" in html
    assert f"{public['width']} &times; {public['height']}" in html
    for rendition in re.findall(r'(?:src|srcset)="([^" ]+)', html):
        image = httpx.get(rendition.replace("&amp;", "&"))
        assert image.status_code == 200 and image.headers["content-type"].startswith("image/")
    for missing in (private["url"], f"{api.url}/AAAAAAAAAAAA"):
        response = httpx.get(missing)
        assert response.status_code == 404 and "text/html" in response.headers["content-type"]
    api.request("DELETE", f"/v1/media/{public['id']}", key=key)
    assert httpx.get(public["url"]).status_code == 404


def test_retention_sweeper_deletes_expired_media(api: ApiServer) -> None:
    key = api.new_key()["key"]
    ttl = _upload(api, key, ttl="3600")
    keep = _upload(api, key)
    anonymous = api.upload(ip=fresh_ip()).json()
    past = int(time.time()) - 10
    api.sql("UPDATE media SET expires_at = :p WHERE id = :i", p=past, i=ttl["id"])
    api.sql("UPDATE media SET retain_until = :p WHERE id = :i", p=past, i=anonymous["id"])
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (_original(api, ttl).exists()
                                           or _original(api, anonymous).exists()):
        time.sleep(0.2)
    assert not _original(api, ttl).exists() and not _original(api, anonymous).exists()
    assert api.request("GET", f"/v1/media/{ttl['id']}", key=key).status_code == 404
    assert api.request("GET", f"/v1/media/{anonymous['id']}").status_code == 404
    assert _original(api, keep).exists()
    assert [m["id"] for m in _list(api, key)["items"]] == [keep["id"]]
    assert api.request("GET", "/v1/usage", key=key).json()["storage_used_bytes"] == keep["filesize"]


def test_sweepers_of_several_processes_delete_once(api: ApiServer, api_factory) -> None:  # type: ignore[no-untyped-def]
    """Two more processes on the same database and store sweep together: each row once."""
    keys = [api.new_key()["key"] for _ in range(2)]
    media = [_upload(api, k) for k in keys for _ in range(5)]
    before = {k: api.request("GET", "/v1/usage", key=k).json()["storage_used_bytes"] for k in keys}
    other = api_factory(IMGPRO_DATABASE_URL=api.database_url,
                        IMGPRO_STORAGE_URL=f"file://{api.data_dir / 'originals'}",
                        IMGPRO_SECRET_KEY="x" * 40)
    assert other.url != api.url
    api.sql("UPDATE media SET expires_at = :p WHERE id IN ("
            + ",".join(f"'{m['id']}'" for m in media) + ")", p=int(time.time()) - 5)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(_original(api, m).exists() for m in media):
        time.sleep(0.2)
    assert not any(_original(api, m).exists() for m in media)
    for k in keys:  # bytes given back exactly once per media, never twice
        usage = api.request("GET", "/v1/usage", key=k).json()
        assert usage["storage_used_bytes"] == before[k] - sum(
            m["filesize"] for m in media[keys.index(k) * 5:(keys.index(k) + 1) * 5])


def test_routing_errors_are_json(api: ApiServer) -> None:
    for path in ("/v1/nothing", "/v1/media/x/y", "/a/b/c/d", "/not-an-id"):
        response = api.http.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/json"
        assert response.json()["error"] == "not_found"
    for method, path in (("PUT", "/v1/media"), ("GET", "/v1/upload"), ("POST", "/v1/usage"),
                         ("DELETE", "/v1/keys")):
        response = api.http.request(method, path)
        assert response.status_code == 405, (method, path)
        assert response.json()["error"] == "method_not_allowed"
        assert response.headers["Allow"]


@pytest.mark.parametrize("path", ["/v1/media", "/v1/usage", "/v1/namespaces"])
def test_concurrent_reads_never_fail(api: ApiServer, path: str) -> None:
    key = api.new_key()["key"]
    _upload(api, key, namespace="busy")
    with ThreadPoolExecutor(8) as pool:
        statuses = set(pool.map(lambda _: api.request("GET", path, key=key).status_code, range(24)))
    assert statuses == {200}
