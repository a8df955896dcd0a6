"""bench.miss_split: a row per corpus photo, the decode split only where the source is a JPEG,
at the scale the transform decodes it at, and the reduce and encode after it."""

from __future__ import annotations

import csv

import simplejpeg

from bench.miss_split import rows
from transformer import SHORT_EDGE


def test_one_row_per_photo_with_the_decode_scale_of_the_transform(corpus) -> None:
    folder = corpus[0].path.parent
    with (folder / "MANIFEST.tsv").open() as fh:
        names = [row["file"] for row in csv.DictReader(fh, delimiter="\t")]
    table = rows(folder, "s", "jpeg", "fast", repeat=1)
    photos, summary = table[:len(names)], table[len(names):]
    assert [cells[0] for cells in photos] == names
    jpegs = 0
    for name, whole, scaled, entropy, share, reduce, encode in photos:
        assert float(whole) > 0
        data = (folder / name).read_bytes()
        if data[:3] != b"\xff\xd8\xff":
            assert (scaled, entropy, share, reduce, encode) == ("-", "-", "-", "-", "-")
            continue
        assert float(reduce) >= 0 and float(encode) > 0
        jpegs += 1
        shrink = int(scaled.split(":")[0].removeprefix("1/"))
        height, width, _, _ = simplejpeg.decode_jpeg_header(data)
        short = min(width, height)
        target = min(SHORT_EDGE["s"], short)
        assert short // shrink >= target  # never decoded below the rendition
        assert shrink == 8 or short // (shrink * 2) < target  # and as small as allowed
        assert float(entropy) > 0 and share.endswith("%")
    assert jpegs > 0
    assert summary[0][0] == f"mean over {len(names)} photos"
    assert summary[1][0] == f"JPEG sources ({jpegs})"
