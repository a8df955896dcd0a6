"""Operations whose size the caller controls, past every limit a statement or driver has, on
both backends; counters against a full recount (a property test); the list queries' plans.

Rows are made by the database (``tests.api.bulk_media``); everything else goes over HTTP to a
real server. Sizes: 66,000 media in one namespace passes asyncpg's 32,767 arguments,
PostgreSQL's 65,535 parameters and SQLite's 32,766 variables at once.
"""

from __future__ import annotations

import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.bulk_media import add_rows, recount, run, team_of
from tests.api.conftest import ApiServer, tiny_png

PAST_EVERY_LIMIT = 66_000


def _upload(api: ApiServer, key: str, **fields: str) -> dict[str, Any]:
    answer = api.upload(tiny_png(seed=len(fields)), key=key, **fields)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def _get(api: ApiServer, key: str, path: str, **params: Any) -> Any:
    answer = api.request("GET", path, key=key, params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _namespaces(api: ApiServer, key: str) -> dict[str, tuple[int, int]]:
    listed = _get(api, key, "/v1/namespaces")["namespaces"]
    return {n["namespace"]: (n["count"], n["storage_bytes"]) for n in listed}


def _assert_counters_exact(api: ApiServer, key: str, team_id: int) -> None:
    by_namespace, stored = recount(api.database_url, team_id)
    assert _namespaces(api, key) == by_namespace
    assert _get(api, key, "/v1/usage")["storage_used_bytes"] == stored


def _pending_removals(api: ApiServer, team_id: int) -> int:
    rows = run(api.database_url, "SELECT count(*) FROM media WHERE team_id = :t AND "
               "deleted_at IS NOT NULL AND original_removed = false", t=team_id)
    return int(rows[0][0])


def test_namespace_delete_past_every_parameter_limit(api: ApiServer) -> None:
    key = api.new_key()["key"]
    first = _upload(api, key, namespace="big", tags="red")
    kept = _upload(api, key, namespace="keep", tags="red")
    team_id = team_of(api.database_url, first["id"])
    add_rows(api.database_url, team_id, PAST_EVERY_LIMIT, namespace="big", tags=["red", "x"])
    add_rows(api.database_url, team_id, 120, namespace="keep", tags=["red"], sort_at=1_600_000_000)
    assert _namespaces(api, key)["big"][0] == PAST_EVERY_LIMIT + 1

    answer = api.request("DELETE", "/v1/media/batch", key=key, json={"namespace": "big"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"deleted": PAST_EVERY_LIMIT + 1}
    # The counters and every read reflect it in the answer's moment, before any removal.
    assert set(_namespaces(api, key)) == {"keep"}
    _assert_counters_exact(api, key, team_id)
    assert _get(api, key, "/v1/media", namespace="big")["items"] == []
    red = _get(api, key, "/v1/media", tags="red", limit=100)
    assert {m["namespace"] for m in red["items"]} == {"keep"} and red["has_more"] is True
    again = api.request("DELETE", "/v1/media/batch", key=key, json={"namespace": "big"})
    assert again.json() == {"deleted": 0}

    # The sweeper, woken by the delete, removes originals in bounded batches until none is
    # left; the tags of removed rows go with them.
    deadline = time.monotonic() + 240
    while _pending_removals(api, team_id):
        assert time.monotonic() < deadline, f"{_pending_removals(api, team_id)} left"
        time.sleep(0.5)
    assert not (api.data_dir / "originals" / first["src"].rsplit("/", 2)[-2]
                / first["id"]).exists()
    orphan_tags = run(api.database_url, "SELECT count(*) FROM media_tags JOIN media ON "
                      "media.seq = media_tags.media_seq WHERE media.team_id = :t AND "
                      "media.deleted_at IS NOT NULL", t=team_id)
    assert orphan_tags == [(0,)]
    assert _get(api, key, f"/v1/media/{kept['id']}")["id"] == kept["id"]
    _assert_counters_exact(api, key, team_id)


def test_a_namespace_delete_past_its_time_budget_is_finished_by_the_sweeper(
        api_factory: Any) -> None:
    """With (almost) no time to mark rows, the answer still counts every row of the namespace
    exactly, and the sweeper marks the rest; an upload made after the delete survives it."""
    api = api_factory(IMGPRO_NAMESPACE_DELETE_SECONDS="0.001")
    key = api.new_key()["key"]
    first = _upload(api, key, namespace="huge")
    team_id = team_of(api.database_url, first["id"])
    add_rows(api.database_url, team_id, 45_000, namespace="huge", tags=["t"])
    answer = api.request("DELETE", "/v1/media/batch", key=key, json={"namespace": "huge"})
    assert answer.status_code == 200 and answer.json() == {"deleted": 45_001}, answer.text
    later = _upload(api, key, namespace="huge")
    deadline = time.monotonic() + 120
    while run(api.database_url, "SELECT count(*) FROM namespace_deletions") != [(0,)]:
        assert time.monotonic() < deadline, "the sweeper did not finish the deletion"
        time.sleep(0.2)
    listed = _get(api, key, "/v1/media", namespace="huge")["items"]
    assert [m["id"] for m in listed] == [later["id"]]
    assert _namespaces(api, key)["huge"][0] == 1
    _assert_counters_exact(api, key, team_id)


def test_a_full_batch_update_moves_counters(api: ApiServer) -> None:
    key = api.new_key()["key"]
    seed = _upload(api, key, namespace="from", tags="a")
    team_id = team_of(api.database_url, seed["id"])
    add_rows(api.database_url, team_id, 150, namespace="from", tags=["a"], filesize=333)
    ids = [m["id"] for m in _get(api, key, "/v1/media", namespace="from", limit=100)["items"]]
    moved = api.request("PATCH", "/v1/media/batch", key=key, json={
        "ids": ids, "update": {"namespace": "to", "tags": ["b"], "tag_mode": "add"}})
    assert moved.json() == {"updated": 100}
    assert _namespaces(api, key)["to"][0] == 100
    _assert_counters_exact(api, key, team_id)
    tagged = _get(api, key, "/v1/media", tags="a,b", tag_mode="all", limit=100)["items"]
    assert sorted(m["id"] for m in tagged) == sorted(ids)
    assert all(m["tags"] == ["a", "b"] for m in tagged)


def test_a_new_date_moves_the_media_in_its_tags_order(api: ApiServer) -> None:
    """A tag's index carries the media's sort_at: PATCH date (and a re-upload's tags) keep it
    equal, so a tag-filtered page (walked through that index) follows the date."""
    key = api.new_key()["key"]
    made = [_upload(api, key, tags="walked,other") for _ in range(3)]
    oldest = made[0]["id"]
    moved = api.request("PATCH", f"/v1/media/{oldest}", key=key,
                        json={"date": "2099-01-01T00:00:00Z"})
    assert moved.status_code == 200, moved.text
    ids = [m["id"] for m in _get(api, key, "/v1/media", tags="walked")["items"]]
    assert ids == [oldest, made[2]["id"], made[1]["id"]]
    first = _get(api, key, "/v1/media", tags="walked", limit=1)
    rest = _get(api, key, "/v1/media", tags="walked", limit=5, cursor=first["cursor"])
    assert [m["id"] for m in first["items"] + rest["items"]] == ids
    again = api.request("PATCH", f"/v1/media/{oldest}", key=key, json={"date": None})
    assert again.status_code == 200, again.text
    pages, cursor = [], None
    while True:  # one per page: each page's rows are chosen by the tags' index order
        params = {"tags": "walked,nothing", "tag_mode": "any", "limit": 1}
        page = _get(api, key, "/v1/media", **params, **({"cursor": cursor} if cursor else {}))
        pages += [m["id"] for m in page["items"]]
        if not page["has_more"]:
            break
        cursor = page["cursor"]
    assert pages == [made[2]["id"], made[1]["id"], oldest]


NAMESPACES = st.sampled_from([None, "ns-a", "ns-b", "ns-c"])
OPERATIONS = st.lists(st.one_of(
    st.tuples(st.just("upload"), NAMESPACES, st.integers(1, 6)),
    st.tuples(st.just("patch"), NAMESPACES, st.integers(0, 50)),
    st.tuples(st.just("delete"), st.integers(0, 50)),
    st.tuples(st.just("batch_update"), NAMESPACES, st.integers(0, 50), st.integers(1, 4)),
    st.tuples(st.just("batch_delete"), st.integers(0, 50), st.integers(1, 4)),
    st.tuples(st.just("namespace_delete"), NAMESPACES.filter(lambda n: n is not None)),
), min_size=3, max_size=12)


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(operations=OPERATIONS)
def test_counters_equal_a_recount_after_any_operations(api: ApiServer,
                                                       operations: list[tuple[Any, ...]]) -> None:
    key = api.new_key()["key"]
    alive: list[str] = []
    team_id: int | None = None

    def pick(index: int, count: int = 1) -> list[str]:
        if not alive:
            return []
        start = index % len(alive)
        return (alive[start:] + alive[:start])[:count]

    for operation in operations:
        kind = operation[0]
        if kind == "upload":
            fields = {"namespace": operation[1]} if operation[1] else {}
            made = api.upload(tiny_png(operation[2], operation[2], seed=len(alive)), key=key,
                              **fields)
            assert made.status_code == 201, made.text
            alive.append(made.json()["id"])
            team_id = team_id or team_of(api.database_url, alive[-1])
        elif kind == "patch":
            for media_id in pick(operation[2]):
                answer = api.request("PATCH", f"/v1/media/{media_id}", key=key,
                                     json={"namespace": operation[1]})
                assert answer.status_code == 200, answer.text
        elif kind == "delete":
            for media_id in pick(operation[1]):
                answer = api.request("DELETE", f"/v1/media/{media_id}", key=key)
                assert answer.status_code == 200, answer.text
                alive.remove(media_id)
        elif kind == "batch_update":
            ids = pick(operation[2], operation[3])
            if ids:
                answer = api.request("PATCH", "/v1/media/batch", key=key, json={
                    "ids": ids + ids[:1], "update": {"namespace": operation[1]}})
                assert answer.json() == {"updated": len(ids)}, answer.text
        elif kind == "batch_delete":
            ids = pick(operation[1], operation[2])
            if ids:
                answer = api.request("DELETE", "/v1/media/batch", key=key, json={"ids": ids})
                assert answer.json() == {"deleted": len(ids)}, answer.text
                alive[:] = [i for i in alive if i not in ids]
        else:
            answer = api.request("DELETE", "/v1/media/batch", key=key,
                                 json={"namespace": operation[1]})
            assert answer.status_code == 200, answer.text
            listed = {m["id"] for m in _get(api, key, "/v1/media", limit=100)["items"]}
            assert answer.json()["deleted"] == len(set(alive) - listed)
            alive[:] = [i for i in alive if i in listed]
        if team_id is not None:
            _assert_counters_exact(api, key, team_id)
