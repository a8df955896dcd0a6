"""What every benchmark's ``main`` does with its report: name the command that made it, print
it, and write it to ``--out`` (and ``--docs-copy`` where there is one)."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from pathlib import Path


def command_line(module: str, argv: Sequence[str] | None) -> str:
    """``python -m <module>`` and the arguments it was run with (``sys.argv`` when None)."""
    arguments = shlex.join(argv if argv is not None else sys.argv[1:])
    return f"python -m {module} {arguments}".strip()


def publish(text: str, paths: Sequence[Path | None]) -> None:
    """Print ``text`` after a blank line, then write it to each path given (folders made)."""
    print()
    print(text)
    for path in filter(None, paths):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
