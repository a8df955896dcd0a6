"""POST /v1/keys, the verification / activation link and page, pending keys, rate limits,
abilities."""

from __future__ import annotations

import hashlib
import socket
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.api.conftest import ApiServer, confirm_link, fresh_email, fresh_ip


def test_create_key_shape_and_storage(api: ApiServer) -> None:
    email = fresh_email("shape")
    response = api.request("POST", "/v1/keys", json={"email": email, "name": "my-agent"})
    assert response.status_code == 201
    body = response.json()
    assert body["key"].startswith("img_live_") and len(body["key"]) > 40
    assert body["key_id"].startswith("key_")
    assert body["status"] == "active"
    assert body["verified"] is False
    assert body["limits"] == {"uploads": 100, "storage_mb": 5120, "retention_days": 30}
    assert "verify" in body["message"].lower()
    # Stored only as a hash: the plaintext key is nowhere in the database.
    rows = api.sql("SELECT key_hash, name, abilities FROM api_keys WHERE key_id = :k",
                   k=body["key_id"])
    assert rows == [(hashlib.sha256(body["key"].encode()).hexdigest(), "my-agent", "read,write")]
    # The key works at once.
    assert api.request("GET", "/v1/usage", key=body["key"]).status_code == 200


def test_default_name_and_invalid_email(api: ApiServer) -> None:
    body = api.new_key()
    names = api.sql("SELECT name FROM api_keys WHERE key_id = :k", k=body["key_id"])
    assert names == [("Default",)]
    for bad in ("not-an-email", "", "a@", 42, None):
        response = api.request("POST", "/v1/keys", json={"email": bad})
        assert response.status_code == 422, bad
        assert response.json()["error"] == "validation_error"
        assert "email" in response.json()["errors"]
    response = api.request("POST", "/v1/keys", json={"email": fresh_email(), "name": "x" * 101})
    assert response.status_code == 422 and "name" in response.json()["errors"]


def test_malformed_json_is_422(api: ApiServer) -> None:
    for body in (b"{not json", b"[1, 2]", b""):
        response = api.request("POST", "/v1/keys", content=body,
                               headers={"Content-Type": "application/json"})
        assert response.status_code == 422, body
        assert response.json()["error"] == "validation_error"
        assert "body" in response.json()["errors"]


def test_verification_link_verifies_and_lifts_retention(api: ApiServer) -> None:
    email = fresh_email("verify")
    key = api.new_key(email)["key"]
    uploaded = api.upload(key=key).json()
    assert "expires_at" in uploaded  # unverified: 30-day retention
    (link,) = api.links_to(email)
    mail = api.mails_to(email)[0]
    assert mail["Subject"] and mail["Message-ID"] and mail["Date"]
    assert link.startswith(api.url + "/v1/verify?token=")

    # Opening the link (what a mail scanner does too) only shows a page with a button.
    page = httpx.get(link)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<form method="post">' in page.text and "<button" in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert api.request("GET", "/v1/usage", key=key).json()["verified"] is False

    confirmed = api.confirm(link)
    assert "verified" in confirmed.text.lower()
    usage = api.request("GET", "/v1/usage", key=key).json()
    assert usage["verified"] is True
    media = api.request("GET", f"/v1/media/{uploaded['id']}", key=key).json()
    assert "expires_at" not in media  # storage is permanent now
    # Idempotent; a tampered token is refused with an HTML 400 page, on GET and on POST.
    api.confirm(link)
    # One character inside the signature changed, all six of its bits significant: overwriting
    # the last three with "xyz" leaves the signature as it was about once in 65,000 runs (the
    # last character carries padding bits), which made this test fail once.
    swapped = "A" if link[-10] != "A" else "B"
    bad = link[:-10] + swapped + link[-9:]
    assert httpx.get(bad).status_code == 400 and "invalid" in httpx.get(bad).text.lower()
    token = parse_qs(urlsplit(bad).query)["token"][0]
    refused = httpx.post(f"{api.url}/v1/verify", data={"token": token})
    assert refused.status_code == 400 and "invalid" in refused.text.lower()
    # A new account's answer never changes with the account: no retention shown to the next
    # (pending) key either; /v1/usage has the truth.
    assert api.new_key(email)["limits"]["retention_days"] == 30


def test_second_key_for_existing_email_is_pending_until_confirmed(api: ApiServer) -> None:
    email = fresh_email("pending")
    first = api.new_key(email)
    second = api.new_key(email, name="Click https://evil.example/login now")
    assert second["status"] == "pending"
    assert second["key"] != first["key"]
    refused = api.request("GET", "/v1/usage", key=second["key"])
    assert refused.status_code == 401
    assert refused.json()["error"] == "unauthorized"
    assert refused.json()["action"]["type"] == "verify"

    links = api.links_to(email)
    assert len(links) == 2  # verification (first key) + activation (second key)
    activation = api.mails_to(email)[-1]
    text = activation.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    # The requester's words are nowhere in the email; our own facts are.
    assert "evil" not in activation.as_string() and "Click" not in activation.as_string()
    assert second["key_id"] in text and "read, write" in text and "24 hours" in text

    # A mail scanner prefetching the link (even several times) activates nothing.
    for _ in range(2):
        page = httpx.get(links[-1])
        assert page.status_code == 200 and second["key_id"] in page.text
    assert api.request("GET", "/v1/usage", key=second["key"]).status_code == 401
    assert api.sql("SELECT status FROM api_keys WHERE key_id = :k",
                   k=second["key_id"]) == [("pending",)]

    api.confirm(links[-1])
    # Both keys act on the same team; confirming also proved the mailbox: verified.
    usage = api.request("GET", "/v1/usage", key=second["key"]).json()
    assert usage["verified"] is True
    uploaded = api.upload(key=first["key"]).json()
    assert api.request("GET", f"/v1/media/{uploaded['id']}", key=second["key"]).status_code == 200
    # The page of an active key says so (no button); a second POST changes nothing.
    again = httpx.get(links[-1])
    assert "already active" in again.text.lower() and "<form" not in again.text
    token = parse_qs(urlsplit(links[-1]).query)["token"][0]
    assert httpx.post(links[-1], data={"token": token}).status_code == 200
    assert api.sql("SELECT key_count FROM accounts WHERE email = :e", e=email) == [(2,)]


def _comparable(body: dict[str, Any]) -> dict[str, Any]:
    """A 201 without what is random (key, key_id) or follows from status alone (message)."""
    return {k: v for k, v in body.items() if k not in ("key", "key_id", "status", "message")}


def test_a_pending_key_tells_nothing_about_the_account(api: ApiServer) -> None:
    new = api.new_key(fresh_email("fresh"))
    # An existing account that is verified, on a bigger plan, with media: none of it shows.
    email = fresh_email("owner")
    owner = api.new_key(email)
    api.confirm(api.links_to(email)[0])
    api.sql("UPDATE accounts SET plan = 'pro' WHERE email = :e", e=email)
    assert api.upload(key=owner["key"]).status_code == 201
    pending = api.new_key(email)
    assert (new["status"], pending["status"]) == ("active", "pending")
    assert _comparable(pending) == _comparable(new)
    assert set(pending) == set(new)
    # An unverified existing account answers the same way.
    other = fresh_email("unverified")
    api.new_key(other)
    assert _comparable(api.new_key(other)) == _comparable(new)


def test_pending_keys_take_no_slot(api: ApiServer) -> None:
    """Requests in someone's name (5 per email and hour) never lock its owner out: none is
    refused, none counts, and the owner's own confirmation still works."""
    email = fresh_email("slots")
    api.new_key(email)
    pending = [api.new_key(email) for _ in range(4)]
    assert {p["status"] for p in pending} == {"pending"}
    assert api.sql("SELECT key_count, verified FROM accounts WHERE email = :e",
                   e=email) == [(1, False)]
    api.confirm(api.links_to(email)[-1])
    assert api.request("GET", "/v1/usage", key=pending[-1]["key"]).status_code == 200
    assert api.request("GET", "/v1/usage", key=pending[0]["key"]).status_code == 401


def test_pending_keys_expire_and_are_deleted(api: ApiServer) -> None:
    email = fresh_email("expiry")
    api.new_key(email)
    stale = api.new_key(email)
    link = api.links_to(email)[-1]
    day_ago = int(time.time()) - 24 * 3600 - 5
    api.sql("UPDATE api_keys SET created_at = :t WHERE key_id = :k", t=day_ago, k=stale["key_id"])
    page = httpx.get(link)
    assert page.status_code == 400 and "expired" in page.text.lower()
    token = parse_qs(urlsplit(link).query)["token"][0]
    late = httpx.post(link, data={"token": token})
    assert late.status_code == 400 and "expired" in late.text.lower()
    # Nothing changed: the late click neither activated the key nor verified the account.
    assert api.sql("SELECT verified FROM accounts WHERE email = :e", e=email) == [(False,)]
    assert api.request("GET", "/v1/usage", key=stale["key"]).status_code == 401
    # The sweeper (every 0.5 s on the test server) deletes it; a fresh pending key stays.
    fresh = api.new_key(email)
    deadline = time.monotonic() + 30
    while api.sql("SELECT 1 FROM api_keys WHERE key_id = :k", k=stale["key_id"]):
        assert time.monotonic() < deadline, "the expired pending key was never deleted"
        time.sleep(0.2)
    assert api.sql("SELECT status FROM api_keys WHERE key_id = :k",
                   k=fresh["key_id"]) == [("pending",)]


def test_confirmation_from_another_site_is_refused(api: ApiServer) -> None:
    email = fresh_email("csrf")
    api.new_key(email)
    pending = api.new_key(email)
    link = api.links_to(email)[-1]
    for origin in ("https://evil.example", "null", "http://127.0.0.1.evil.example"):
        refused = confirm_link(link, Origin=origin)
        assert refused.status_code == 403, origin
    assert api.sql("SELECT status FROM api_keys WHERE key_id = :k",
                   k=pending["key_id"]) == [("pending",)]
    for body in ({"token": "x" * 9000}, {"nope": "1"}):
        assert httpx.post(link, data=body).status_code in (400, 422)
    # Our own page's origin (what a browser sends) works.
    assert confirm_link(link, Origin=api.url).status_code == 200
    assert api.request("GET", "/v1/usage", key=pending["key"]).status_code == 200


def test_five_keys_per_email_per_hour(api: ApiServer) -> None:
    email = fresh_email("hourly")
    for _ in range(5):
        api.new_key(email)
    response = api.request("POST", "/v1/keys", json={"email": email})
    assert response.status_code == 429
    body = response.json()
    assert body["error"] == "rate_limited"
    assert body["action"]["type"] == "wait"
    assert 0 < body["action"]["seconds"] <= 3600
    assert response.headers["Retry-After"] == str(body["action"]["seconds"])


def test_twenty_keys_per_ip_per_hour(api: ApiServer) -> None:
    ip = fresh_ip()
    for _ in range(20):
        response = api.request("POST", "/v1/keys", json={"email": fresh_email()}, ip=ip)
        assert response.status_code == 201
    response = api.request("POST", "/v1/keys", json={"email": fresh_email()}, ip=ip)
    assert response.status_code == 429
    assert response.json()["error"] == "rate_limited"
    assert int(response.headers["Retry-After"]) > 0
    # Another client is not affected.
    assert api.request("POST", "/v1/keys", json={"email": fresh_email()}).status_code == 201


def test_abilities(api: ApiServer) -> None:
    reader = api.new_key(abilities=["read"])["key"]
    response = api.upload(key=reader)
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    assert api.request("GET", "/v1/media", key=reader).status_code == 200
    writer = api.new_key(abilities="write")["key"]
    assert api.upload(key=writer).status_code == 201
    assert api.request("GET", "/v1/media", key=writer).status_code == 403
    bad = api.request("POST", "/v1/keys", json={"email": fresh_email(), "abilities": ["admin"]})
    assert bad.status_code == 422 and "abilities" in bad.json()["errors"]


def test_bad_keys_are_401(api: ApiServer) -> None:
    for header in ("Bearer img_live_nope", "Bearer something", "Basic abc", "Bearer"):
        response = api.http.get("/v1/media", headers={"Authorization": header})
        assert response.status_code == 401, header
        assert response.json()["error"] == "unauthorized"
    assert api.http.get("/v1/usage").status_code == 401
    # A wrong key on upload is 401, never a silent anonymous upload.
    assert api.upload(key="img_live_wrong").status_code == 401


def test_registration_closed_and_public_urls(api_factory) -> None:  # type: ignore[no-untyped-def]
    closed = api_factory(IMGPRO_REGISTRATION="closed",
                         IMGPRO_REGISTRATION_REDIRECT_URL="https://dashboard.example/keys",
                         IMGPRO_PUBLIC_URL="https://img.example/", IMGPRO_CDN_URL="https://src.example")
    response = closed.request("POST", "/v1/keys", json={"email": fresh_email()})
    assert response.status_code == 403
    body = response.json()
    assert body["error"] == "registration_closed"
    assert body["action"] == {"type": "redirect", "url": "https://dashboard.example/keys",
                              "label": "Go to dashboard"}
    # IMGPRO_PUBLIC_URL / IMGPRO_CDN_URL are the bases of url / src.
    media = closed.upload().json()
    assert media["url"] == f"https://img.example/{media['id']}"
    assert media["src"] == f"https://src.example/anon/{media['id']}.png"
    assert media["upgrade"]["url"].startswith("https://img.example/")


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:  # noqa: N802
        self.messages.append(envelope.content)
        return "250 OK"


def test_rate_limits_off_and_smtp(api_factory) -> None:  # type: ignore[no-untyped-def]
    from aiosmtpd.controller import Controller

    inbox = _Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        relaxed = api_factory(IMGPRO_RATE_LIMITS="off", IMGPRO_SMTP_URL=f"smtp://127.0.0.1:{port}")
        email = fresh_email("smtp")
        relaxed.new_key(email)
        deadline = time.monotonic() + 10
        while not inbox.messages and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        smtp.stop()
    (sent,) = inbox.messages
    assert email.encode() in sent and b"/v1/verify?token=" in sent
    assert relaxed.links_to(email)  # the outbox keeps a copy too
    ip = fresh_ip()
    statuses = {
        relaxed.request("POST", "/v1/keys", json={"email": fresh_email()}, ip=ip).status_code
        for _ in range(22)
    }
    assert statuses == {201}
    uploads = [relaxed.upload(ip=ip) for _ in range(21)]
    assert {r.status_code for r in uploads} == {201}
    assert "X-RateLimit-Limit" not in uploads[-1].headers
