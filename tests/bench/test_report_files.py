"""bench.report_files: the command a report names, and where it is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.report_files import command_line, publish


def test_command_line_quotes_arguments_and_drops_a_trailing_space() -> None:
    assert command_line("bench.quality", ["--settings", "^(today|jpegli)"]) == (
        "python -m bench.quality --settings '^(today|jpegli)'")
    assert command_line("bench.compare", []) == "python -m bench.compare"


def test_publish_prints_and_writes_every_given_path(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out, copy = tmp_path / "a" / "report.md", tmp_path / "b" / "copy.md"
    publish("# report\n", (out, None, copy))
    assert out.read_text() == copy.read_text() == "# report\n"
    printed = capsys.readouterr().out
    assert printed.startswith("\n# report\n") and f"wrote {out}" in printed
    assert f"wrote {copy}" in printed
