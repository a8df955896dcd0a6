"""The peers' URLs must ask for the same pixels as our ``size`` does, or the comparison is void."""

from __future__ import annotations

from pathlib import Path

import pytest
import pyvips

import transformer
from bench.inprocess_limit import render
from bench.workloads import (
    TEAM,
    WORKLOADS,
    Photo,
    Served,
    ipx_path,
    load_photos,
    load_rotation,
    ours_path,
    ours_teams,
    output_size,
    rotation,
    thumbor_path,
)

M_WEBP = next(w for w in WORKLOADS if w.name == "m WebP")
L_AVIF = next(w for w in WORKLOADS if w.name == "l AVIF")
LANDSCAPE = Photo(Path("/x/wide.jpg"), "jpeg", 1920, 1280)
PORTRAIT = Photo(Path("/x/tall.png"), "png", 1440, 1920)
SMALL = Photo(Path("/x/small.webp"), "webp", 1600, 1000)


def test_output_size_constrains_the_short_edge_and_never_enlarges() -> None:
    assert output_size(LANDSCAPE, 640) == (960, 640)
    assert output_size(PORTRAIT, 640) == (640, 853)
    assert output_size(SMALL, 1080) == (1600, 1000)


def test_peer_urls_constrain_the_short_edge_at_quality_80() -> None:
    wide, tall = Served(LANDSCAPE, 3), Served(PORTRAIT, 0)
    assert ours_path(wide, M_WEBP) == "/bench/c03-wide.webp?size=m"
    assert ipx_path(wide, M_WEBP) == "/h_640,q_80,f_webp/c03-wide.jpg"
    assert ipx_path(tall, M_WEBP) == "/w_640,q_80,f_webp/c00-tall.png"
    assert (
        thumbor_path(wide, L_AVIF)
        == "/unsafe/0x1080/filters:quality(80):format(avif):no_upscale()/c03-wide.jpg"
    )
    assert thumbor_path(tall, M_WEBP).startswith("/unsafe/640x0/")


def test_our_cold_rotation_changes_team_each_pass_and_peers_keep_their_paths() -> None:
    served = rotation([LANDSCAPE, PORTRAIT], copies=2)
    paths, prefixes = load_rotation("ours", served, M_WEBP)
    assert paths[0] == "/c00-wide.webp?size=m"
    assert prefixes[0] == f"/{TEAM}" and len(set(prefixes)) == len(prefixes) == len(ours_teams())
    hit = next(w for w in WORKLOADS if w.kind == "hit")
    assert load_rotation("ours", served, hit) == ([ours_path(s, hit) for s in served], [""])
    assert load_rotation("ipx", served, M_WEBP) == ([ipx_path(s, M_WEBP) for s in served], [""])


def test_rotation_interleaves_photos_and_names_are_distinct() -> None:
    served = rotation([LANDSCAPE, PORTRAIT, SMALL], copies=4)
    assert [s.photo for s in served[:3]] == [LANDSCAPE, PORTRAIT, SMALL]
    assert len({s.uid for s in served}) == 12


def test_in_process_render_gives_the_asked_geometry(corpus) -> None:
    photos = load_photos(corpus[0].path.parent)
    assert len(photos) == len(corpus)
    for photo in photos[:4]:
        body = render(
            photo.path.read_bytes(), photo, 320, "webp",
            transformer._encoder_settings.encoder_setting("webp"),
        )
        image = pyvips.Image.new_from_buffer(body, "")
        want = output_size(photo, 320)
        assert (image.width, image.height) == pytest.approx(want, abs=1)
        assert image.get("vips-loader") == "webpload_buffer"
