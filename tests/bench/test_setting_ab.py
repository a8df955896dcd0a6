"""bench.setting_ab swaps only the encoder setting, and puts the library's own back."""

from __future__ import annotations

from bench.setting_ab import measure, parse_setting
from transformer._encoder_settings import encoder_setting


def rows(lines: list[str]) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_same_setting_same_figures_lower_q_fewer_bytes_lower_score(corpus) -> None:
    folder = corpus[0].path.parent
    ours = encoder_setting("webp", "fast")
    lower = ours.with_quality(40)
    same, worse = rows(measure("webp", "fast", {"ours": ours, "again": ours, "q40": lower},
                               ["s"], folder, photos=2))[1:]
    first = rows(measure("webp", "fast", {"ours": ours}, ["s"], folder, photos=2))[0]
    assert same[2] == first[2] and same[3] == "1.000" and same[4] == first[4]  # bytes, score
    assert float(worse[3]) < 1.0 and float(worse[4]) < float(first[4])
    assert encoder_setting("webp", "fast") is ours  # the library's setting is back


def test_parse_setting_reads_encoder_quality_and_options() -> None:
    setting = parse_setting("libvips 78 effort=0 subsample_mode=on")
    assert setting.quality == 78
    assert dict(setting.options) == {"effort": 0, "subsample_mode": "on"}
