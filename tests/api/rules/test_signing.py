from __future__ import annotations

import os
import stat
import string
import subprocess
import sys
import time
from pathlib import Path

import pytest

from api.rules.signing import SECRET_FILE_NAME, BadSignature, Signer, load_secret
from api.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
BASE64URL = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"


def test_round_trip_keeps_payload() -> None:
    signer = Signer("s" * 40)
    token = signer.sign("verify", {"account": 42, "email": "a@example.com"})
    assert signer.unsign("verify", token) == {"account": 42, "email": "a@example.com"}
    assert signer.unsign("verify", token, max_age=3600) == {"account": 42, "email": "a@example.com"}


def test_token_is_url_safe() -> None:
    token = Signer("s" * 40).sign("upgrade", {"team": "abc", "note": "+/=?&#"})
    assert all(c.isalnum() or c in "-_." for c in token), token


def test_wrong_purpose_is_refused() -> None:
    signer = Signer("s" * 40)
    token = signer.sign("verify", {"account": 1})
    with pytest.raises(BadSignature):
        signer.unsign("upgrade", token)


def test_other_secret_is_refused() -> None:
    token = Signer("a" * 40).sign("verify", {"account": 1})
    with pytest.raises(BadSignature):
        Signer("b" * 40).unsign("verify", token)


@pytest.mark.parametrize("position", [0, 5, -1, -10])
def test_tampered_token_is_refused(position: int) -> None:
    signer = Signer("s" * 40)
    token = signer.sign("verify", {"account": 1})
    chars = list(token)
    # Flip the high bit of the character's 6-bit value: the last base64 character of the
    # 20-byte signature carries 2 unused low bits, so "A" <-> "B" there can change nothing.
    index = BASE64URL.find(chars[position])
    chars[position] = BASE64URL[(index + 32) % 64] if index >= 0 else "A"
    with pytest.raises(BadSignature):
        signer.unsign("verify", "".join(chars))


@pytest.mark.parametrize("garbage", ["", ".", "..", "abc", "a.b.c", "\x00\xff", "é" * 20, "=" * 50])
def test_garbage_is_refused_with_bad_signature(garbage: str) -> None:
    with pytest.raises(BadSignature):
        Signer("s" * 40).unsign("verify", garbage)


def test_expired_token_is_refused() -> None:
    signer = Signer("s" * 40)
    token = signer.sign("verify", {"account": 1})
    time.sleep(2.1)  # itsdangerous timestamps have one-second resolution
    with pytest.raises(BadSignature):
        signer.unsign("verify", token, max_age=1)
    assert signer.unsign("verify", token, max_age=60) == {"account": 1}


def test_non_object_payload_is_refused() -> None:
    signer = Signer("s" * 40)
    token = signer._serializer("verify").dumps([1, 2, 3])
    with pytest.raises(BadSignature):
        signer.unsign("verify", token)


def test_empty_secret_or_purpose_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        Signer("")
    with pytest.raises(ValueError):
        Signer("s" * 40).sign("", {})


def test_secret_from_settings_wins(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, secret_key="from-the-environment")
    assert load_secret(settings) == "from-the-environment"
    assert not (tmp_path / SECRET_FILE_NAME).exists()


def test_secret_file_is_created_once_private_and_reused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "nested" / "data")
    first = load_secret(settings)
    path = settings.data_dir / SECRET_FILE_NAME
    assert len(first) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_secret(settings) == first
    assert sorted(p.name for p in settings.data_dir.iterdir()) == [SECRET_FILE_NAME]  # no temp left


def test_unusable_secret_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / SECRET_FILE_NAME).write_text("short\n")
    with pytest.raises(RuntimeError, match="IMGPRO_SECRET_KEY"):
        load_secret(Settings(data_dir=tmp_path))


def test_processes_starting_together_agree_on_one_secret(tmp_path: Path) -> None:
    """Eight processes race to create the file; all must come back with the same secret."""
    go = tmp_path / "go"
    script = (
        "import pathlib, sys, time\n"
        "from api.settings import Settings\n"
        "from api.rules.signing import load_secret\n"
        f"go = pathlib.Path({str(go)!r})\n"
        "while not go.exists():\n"
        "    time.sleep(0.001)\n"
        f"print(load_secret(Settings(data_dir={str(tmp_path / 'data')!r})))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "IMGPRO_SECRET_KEY"}
    env["PYTHONPATH"] = str(ROOT)
    procs = [
        subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(8)
    ]
    time.sleep(1.0)  # let them all import and spin on the start flag
    go.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        results.append(out.strip())
    assert len(set(results)) == 1, results
    assert (tmp_path / "data" / SECRET_FILE_NAME).read_text().strip() == results[0]
