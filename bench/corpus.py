"""Where the benchmarks find their photos: ``IMGPRO_CORPUS``, or ``../shared/corpus`` beside
the clone. The tests never use it (they have ``tests/images``); a benchmark without it stops
with a message that says how to get it, instead of measuring nothing."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BESIDE_THE_CLONE = REPO_ROOT.parent / "shared" / "corpus"


def corpus_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The corpus folder (one with a ``MANIFEST.tsv``); ``SystemExit`` with advice if none."""
    candidate = Path(explicit or os.environ.get("IMGPRO_CORPUS") or BESIDE_THE_CLONE)
    if not (candidate / "MANIFEST.tsv").is_file():
        raise SystemExit(
            f"benchmark corpus not found at {candidate} (no MANIFEST.tsv): set IMGPRO_CORPUS "
            "to a folder of photos with a MANIFEST.tsv (file, format, width, height, bytes "
            "columns), e.g. the shared corpus, or tests/images' built set "
            "(python tests/images/build.py prints where it is)")
    return candidate.resolve()


def corpus_label(path: Path) -> str:
    """How a report names the corpus: relative to the repository (``../shared/corpus``), so a
    report written here says nothing of this machine's paths; a folder elsewhere is named
    by its own name only, as set through IMGPRO_CORPUS."""
    try:
        return os.path.relpath(path, REPO_ROOT) if path.is_relative_to(REPO_ROOT.parent) \
            else f"IMGPRO_CORPUS ({path.name})"
    except ValueError:  # another drive (Windows)
        return f"IMGPRO_CORPUS ({path.name})"
