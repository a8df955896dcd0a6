"""send_mail: outbox files always, SMTP delivery to a real aiosmtpd server on loopback."""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import ssl
from collections.abc import Iterator
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword
from pydantic import ValidationError

from api.mail import send_mail
from api.rules.smtp_relay import DEFAULT_MAIL_FROM, SmtpRelay, parse_smtp_url
from api.settings import Settings

LINK = "http://127.0.0.1:8080/v1/verify?token=abc.def"


class Inbox:
    """aiosmtpd handler that keeps what it receives."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 OK"

    def message(self, index: int = 0) -> EmailMessage:
        content = self.envelopes[index].content
        assert isinstance(content, bytes)
        parsed = message_from_bytes(content, policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        return parsed


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Logins:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str,
                 auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        self.seen.append((login, password))
        return AuthResult(success=(login, password) == ("mailer", "p@ss:w/rd"))


@contextlib.contextmanager
def run_smtp(inbox: Inbox, **kwargs: Any) -> Iterator[Controller]:
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), **kwargs)
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


@pytest.fixture(scope="module")
def tls_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server_tls(tls_ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_ca.issue_cert("localhost").configure_cert(context)
    return context


@pytest.fixture
def trust_test_ca(tls_ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The system trust store for this test is our CA (OpenSSL reads SSL_CERT_FILE)."""
    pem = tmp_path / "ca.pem"
    tls_ca.cert_pem.write_to_path(str(pem))
    monkeypatch.setenv("SSL_CERT_FILE", str(pem))


def settings_for(tmp_path: Path, smtp_url: str | None = None, **extra: Any) -> Settings:
    return Settings(data_dir=tmp_path / "data", smtp_url=smtp_url, smtp_timeout=5, **extra)


def read_eml(path: Path) -> EmailMessage:
    parsed = message_from_bytes(path.read_bytes(), policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    return parsed


# -- the outbox ----------------------------------------------------------------------------------


async def test_writes_an_rfc5322_message_to_the_outbox(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    path = await send_mail(settings, to="Zoë <zoe@example.com>", subject="Verify your imgpro key ✓",
                           text=f"Click {LINK}", html=f'<p><a href="{LINK}">Verify</a></p>')
    assert path.parent == settings.data_dir / "outbox"
    assert re.fullmatch(r"\d{8}T\d{12}Z-[0-9a-f]{16}\.eml", path.name), path.name
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp file left

    raw = path.read_bytes()
    assert b"\r\n" in raw and all(ord(" ") <= b < 127 or b in b"\r\n\t" for b in raw)
    message = read_eml(path)
    assert message["From"] == DEFAULT_MAIL_FROM
    assert message["To"] == "Zoë <zoe@example.com>"
    assert message["Subject"] == "Verify your imgpro key ✓"
    assert parsedate_to_datetime(message["Date"]).tzinfo is not None
    assert re.fullmatch(r"<[^@<>\s]+@localhost>", message["Message-ID"])
    assert message.get_content_type() == "multipart/alternative"
    text_part = message.get_body(("plain",))
    html_part = message.get_body(("html",))
    assert text_part is not None and html_part is not None
    assert LINK in text_part.get_content()
    assert f'href="{LINK}"' in html_part.get_content()


async def test_text_only_message_and_configured_sender(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, mail_from="Pictures <noreply@pics.example>")
    message = read_eml(await send_mail(settings, to="a@example.com", subject="Hi", text="plain"))
    assert message.get_content_type() == "text/plain"
    assert message.get_content().strip() == "plain"
    assert message["From"] == "Pictures <noreply@pics.example>"
    assert message["Message-ID"].endswith("@pics.example>")


async def test_every_message_gets_its_own_file(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    paths = [await send_mail(settings, to="a@example.com", subject=f"n{i}", text="x")
             for i in range(5)]
    assert len(set(paths)) == 5
    assert len({read_eml(p)["Message-ID"] for p in paths}) == 5
    assert sorted(paths) == sorted(settings.data_dir.joinpath("outbox").glob("*.eml"))


@pytest.mark.parametrize("field", ["to", "subject"])
async def test_header_injection_is_refused(tmp_path: Path, field: str) -> None:
    kwargs = {"to": "a@example.com", "subject": "Hi", "text": "x"}
    kwargs[field] += "\r\nBcc: victim@example.com"
    with pytest.raises(ValueError):
        await send_mail(settings_for(tmp_path), **kwargs)  # type: ignore[arg-type]


# -- SMTP delivery -------------------------------------------------------------------------------


async def test_sends_over_plain_smtp_and_keeps_the_file(tmp_path: Path, inbox: Inbox) -> None:
    with run_smtp(inbox) as controller:
        settings = settings_for(tmp_path, f"smtp://127.0.0.1:{controller.port}")
        path = await send_mail(settings, to="zoe@example.com", subject="Verify",
                               text=f"Click {LINK}")
    assert len(inbox.envelopes) == 1
    envelope = inbox.envelopes[0]
    assert envelope.mail_from == "no-reply@localhost"
    assert envelope.rcpt_tos == ["zoe@example.com"]
    received = inbox.message()
    stored = read_eml(path)
    assert received["Message-ID"] == stored["Message-ID"]
    assert LINK in received.get_content()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_authenticates_with_percent_decoded_credentials(tmp_path: Path, inbox: Inbox) -> None:
    logins = Logins()
    with run_smtp(inbox, authenticator=logins, auth_require_tls=False,
                               auth_required=True) as controller:
        url = f"smtp://mailer:p%40ss%3Aw%2Frd@127.0.0.1:{controller.port}"
        await send_mail(settings_for(tmp_path, url), to="a@example.com", subject="s", text="t")
    assert logins.seen == [("mailer", "p@ss:w/rd")]
    assert len(inbox.envelopes) == 1


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_wrong_password_is_logged_not_raised(
    tmp_path: Path, inbox: Inbox, caplog: pytest.LogCaptureFixture
) -> None:
    with run_smtp(inbox, authenticator=Logins(), auth_require_tls=False,
                               auth_required=True) as controller:
        url = f"smtp://mailer:wrong-secret@127.0.0.1:{controller.port}"
        with caplog.at_level(logging.WARNING, logger="imgpro.mail"):
            path = await send_mail(settings_for(tmp_path, url), to="a@example.com", subject="s",
                                   text="t")
    assert path.exists() and inbox.envelopes == []
    assert "could not send" in caplog.text
    assert "wrong-secret" not in caplog.text


async def test_starttls(tmp_path: Path, inbox: Inbox, server_tls: ssl.SSLContext,
                        trust_test_ca: None) -> None:
    with run_smtp(inbox, tls_context=server_tls, require_starttls=True) as controller:
        url = f"smtp://localhost:{controller.port}?starttls=1"
        await send_mail(settings_for(tmp_path, url), to="a@example.com", subject="s", text="t")
    assert len(inbox.envelopes) == 1


async def test_implicit_tls(tmp_path: Path, inbox: Inbox, server_tls: ssl.SSLContext,
                            trust_test_ca: None) -> None:
    with run_smtp(inbox, ssl_context=server_tls) as controller:
        url = f"smtps://localhost:{controller.port}"
        await send_mail(settings_for(tmp_path, url), to="a@example.com", subject="s", text="t")
    assert len(inbox.envelopes) == 1


async def test_untrusted_certificate_is_not_used(
    tmp_path: Path, inbox: Inbox, server_tls: ssl.SSLContext, caplog: pytest.LogCaptureFixture
) -> None:
    with run_smtp(inbox, tls_context=server_tls, require_starttls=True) as controller:
        url = f"smtp://localhost:{controller.port}?starttls=1"
        with caplog.at_level(logging.WARNING, logger="imgpro.mail"):
            path = await send_mail(settings_for(tmp_path, url), to="a@example.com", subject="s",
                                   text="t")
    assert inbox.envelopes == []
    assert path.exists()
    assert "could not send" in caplog.text


async def test_unreachable_relay_keeps_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(tmp_path, f"smtp://127.0.0.1:{free_port()}")
    with caplog.at_level(logging.WARNING, logger="imgpro.mail"):
        path = await send_mail(settings, to="a@example.com", subject="s", text=f"Click {LINK}")
    assert LINK in read_eml(path).get_content()
    assert f"could not send {path.name}" in caplog.text


async def test_silent_relay_is_given_up_after_the_time_limit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A relay that accepts TCP but never greets must not hold the request forever."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        settings = Settings(data_dir=tmp_path, smtp_url=f"smtp://127.0.0.1:{port}",
                            smtp_timeout=0.5)
        with caplog.at_level(logging.WARNING, logger="imgpro.mail"):
            path = await send_mail(settings, to="a@example.com", subject="s", text="t")
    assert path.exists()
    assert "could not send" in caplog.text


# -- IMGPRO_SMTP_URL ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example", SmtpRelay("mail.example", 25, None, None, False, False)),
        ("smtp://u:p@mail.example:2525", SmtpRelay("mail.example", 2525, "u", "p", False, False)),
        ("smtp://u%40x:p%2F@h?starttls=1", SmtpRelay("h", 587, "u@x", "p/", False, True)),
        ("smtp://h:25?starttls=true", SmtpRelay("h", 25, None, None, False, True)),
        ("smtp://h?starttls=0", SmtpRelay("h", 25, None, None, False, False)),
        ("smtps://u:@h", SmtpRelay("h", 465, "u", "", True, False)),
        ("smtps://[::1]:1465", SmtpRelay("::1", 1465, None, None, True, False)),
    ],
)
def test_parse_smtp_url(url: str, expected: SmtpRelay) -> None:
    assert parse_smtp_url(url) == expected


@pytest.mark.parametrize(
    "url",
    ["http://h", "smtp://", "smtp://h:port", "smtp://h:99999", "smtps://h?starttls=1", "h:25"],
)
def test_bad_smtp_url_is_refused_at_startup(url: str) -> None:
    with pytest.raises(ValueError):
        parse_smtp_url(url)
    with pytest.raises(ValidationError):
        Settings(smtp_url=url)


def test_relay_repr_hides_the_password() -> None:
    text = repr(parse_smtp_url("smtp://mailer:hunter2@h:25"))
    assert "hunter2" not in text and "mailer" in text
