"""Quality benchmark: bytes at EQUAL visual quality, per format and encoder setting, in one run.

    python -m bench.quality                 # the full run (about an hour on 2 cores; AVIF at l)
    python -m bench.quality --quick         # smoke run: 3 photos at size s, q 70-90, < 1 min
    python -m bench.quality --lanes jpeg-m,webp-m --settings 'jpegli|today'

For each lane (JPEG, WebP and AVIF at m, AVIF at l) and each corpus photo:

1. the pixels the library hands its encoder are computed once per effort (``transformer.
   _pipeline``'s steps up to the encode: the final effort decodes some JPEGs at a larger scale),
   and every candidate setting encodes them at a q sweep (50-90), in-process, timed (CPU time,
   libvips at one thread, fastest of 3 for short encodes);
2. ``transformer.transform`` renders the rendition at our fast and final settings, and our
   server (``python -m api serve --role cdn``, caches off) serves it, both checked against
   the sweep's bytes;
3. ipx and thumbor (installed by ``bench.participants``) serve the same rendition at the same
   q sweep;
4. every rendition is scored with SSIMULACRA2 and SSIM (luma) against one reference per photo
   and output size (``bench.quality_metrics``), on 2 processes.

Reported per lane and setting: mean bytes at the score ipx reaches at q80 (log-bytes
interpolated linearly in score along the setting's own sweep, per photo), relative to ipx's
q80 bytes; the per-photo median of that ratio; the largest per-photo ratio to today's setting
at the same score; the q at which the setting reaches that score; the mean encode time at that
q; and the same bytes ratio at equal SSIM (luma) as a cross-check. Photos with alpha are left
out of the JPEG means (the background a server flattens on dominates their score). Writes
``docs/bench-quality.md`` for a full run (``--out`` always), and the raw figures as JSON.

Scores are cached by content (``--cache-dir``), so a re-run scores only renditions whose bytes
changed; encode times and peer renditions are always measured anew.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import pyvips

import transformer
from bench import participants
from bench.corpus import corpus_dir, corpus_label
from bench.host import host_line
from bench.quality_metrics import (
    Ssimulacra2Reference,
    decoded,
    full_resolution,
    log_bytes_at_score,
    q_at_score,
    reference_at,
    ssim_luma,
)
from bench.report_files import command_line, publish
from bench.server_process import ServerFailed, start
from bench.workloads import EXTENSIONS, TEAM, Photo, load_photos
from transformer import SHORT_EDGE, Format, Size
from transformer._deadline import Deadline
from transformer._encoder_settings import (
    DEFAULT_EFFORT,
    EFFORTS,
    Effort,
    EncoderSetting,
    encoder_setting,
)
from transformer._pipeline import PIPELINE, Job, encode_image

REPO_ROOT = participants.REPO_ROOT
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "imgpro-bench"
QS = (50, 60, 70, 80, 90)
QUICK_QS = (70, 80, 90)
REFERENCE_Q = 80
"""ipx at this q sets each photo's target score."""
QUICK_PHOTOS = ("photo-storm-1920x1280.jpg", "photo-wood-portrait-1440x1920.jpg",
                "photo-yellowflower-alpha-1600x1000.png")
PEERS = ("ipx", "thumbor")
SHORT_ENCODE = 0.2
"""Encodes faster than this (seconds) are repeated 3 times and the fastest kept."""


@dataclass(frozen=True)
class Lane:
    """One output format at one size: a table of the report."""

    name: str
    fmt: Format
    size: Size

    @property
    def label(self) -> str:
        return f"{self.size} {self.fmt.upper() if self.fmt != 'webp' else 'WebP'}"


LANES = (Lane("jpeg-m", "jpeg", "m"), Lane("webp-m", "webp", "m"), Lane("avif-m", "avif", "m"),
         Lane("avif-l", "avif", "l"))
QUICK_SIZES: dict[Size, Size] = {"m": "s", "l": "s"}
"""--quick renders every lane at s, so that scoring stays within seconds."""


# ---- candidate settings ------------------------------------------------------------------------

Encode = Callable[[pyvips.Image, int], bytes]


@dataclass
class Candidate:
    name: str
    encode: Encode
    setting: EncoderSetting | None = None
    """The library setting this candidate is (quality aside), to find ours among them."""
    lanes: tuple[str, ...] = ()
    """Lane names it runs in; empty: every lane of its format."""
    quick: bool = False
    """Run in --quick too."""
    pixels: Effort = "final"
    """Which decode it encodes: ``transform``'s at effort "fast" (today's shrink-on-load) or
    "final" (less shrink-on-load for some JPEGs, ``jpeg_shrink_on_load(keep_detail=True)``)."""


def libvips(fmt: Format, **options: Any) -> tuple[Encode, EncoderSetting]:
    setting = EncoderSetting("libvips", REFERENCE_Q, options)
    return (lambda image, q: encode_image(image, fmt, setting.with_quality(q))), setting


TODAY_NAME = "today (e4)"
TODAY: dict[Format, EncoderSetting] = {
    "jpeg": EncoderSetting("libvips", 80, {"optimize_coding": True, "interlace": True,
                                           "subsample_mode": "on"}),
    "webp": EncoderSetting("libvips", 80, {"effort": 2, "smart_subsample": False}),
    "avif": EncoderSetting("libvips", 80, {"effort": 0, "subsample_mode": "on"}),
}
"""Settings e4, the ones in use before this benchmark: the baseline of "vs today"."""


def _jpegli_jpegtran(*flags: str) -> Encode:
    """jpegli's baseline output rewritten by libjpeg-turbo's jpegtran with ``flags``: lossless,
    the same pixels; a separate program, timed through its CPU time as a child."""

    def encode(image: pyvips.Image, q: int) -> bytes:
        from transformer import _jpegli

        data = _jpegli.encode(image, q)
        if data is None:
            raise RuntimeError("jpegli refused the image")
        jpegtran = shutil.which("jpegtran")
        if jpegtran is None:
            raise RuntimeError("jpegtran not found (Debian: apt-get install libjpeg-turbo-progs)")
        return subprocess.run([jpegtran, *flags, "-copy", "none"], input=data,
                              capture_output=True, check=True).stdout

    return encode


def _jpegli(**options: Any) -> tuple[Encode, EncoderSetting]:
    setting = EncoderSetting("jpegli", REFERENCE_Q, options,
                             fallback=EncoderSetting("libvips", REFERENCE_Q))

    def encode(image: pyvips.Image, q: int) -> bytes:
        from transformer import _jpegli

        if not _jpegli.can_encode(image):
            raise RuntimeError("jpegli cannot take this image")
        return encode_image(image, "jpeg", setting.with_quality(q))

    return encode, setting


def candidates(fmt: Format, slow: bool = False) -> list[Candidate]:
    """Every setting measured for ``fmt``; ``slow`` adds AVIF effort 6 at m and effort 2 4:2:0
    (--slow: about 20 more minutes on 2 cores, for settings too slow or too big to choose)."""
    found: list[Candidate] = []

    def add(name: str, encode: Encode, setting: EncoderSetting | None = None,
            lanes: tuple[str, ...] = (), quick: bool = False, pixels: Effort = "final") -> None:
        found.append(Candidate(name, encode, setting, lanes, quick, pixels))

    today = TODAY.get(fmt)
    if today is not None:
        def encode_today(image: pyvips.Image, q: int) -> bytes:
            return encode_image(image, fmt, today.with_quality(q))

        add(TODAY_NAME, encode_today, today, quick=True, pixels="fast")
        add("today's setting, final decode", encode_today)
    if fmt == "jpeg":
        add("libvips progressive 4:4:4",
            *libvips("jpeg", optimize_coding=True, interlace=True, subsample_mode="off"))
        add("libvips baseline 4:2:0", *libvips("jpeg", optimize_coding=True, subsample_mode="on"))
        add("jpegli baseline 4:2:0, fast decode", *_jpegli(), quick=True, pixels="fast")
        add("jpegli baseline 4:2:0", *_jpegli())
        add("jpegli + jpegtran -optimize (baseline)", _jpegli_jpegtran("-optimize"))
        add("jpegli + jpegtran -optimize -progressive",
            _jpegli_jpegtran("-optimize", "-progressive"))
        add("jpegli + mozjpeg lossless (progressive)", *_jpegli(progressive=True))
    elif fmt == "webp":
        for effort in (4, 6):
            add(f"effort {effort}", *libvips("webp", effort=effort, smart_subsample=False))
        for effort in (2, 6):
            add(f"effort {effort} + smart_subsample",
                *libvips("webp", effort=effort, smart_subsample=True))
        for preset in ("photo", "picture"):
            add(f"effort 6 preset {preset}",
                *libvips("webp", effort=6, smart_subsample=False, preset=preset))
        add("effort 6 + smart_deblock",
            *libvips("webp", effort=6, smart_subsample=False, smart_deblock=True))
    elif fmt == "avif":
        add("effort 0 4:4:4, fast decode", *libvips("avif", effort=0, subsample_mode="off"),
            pixels="fast")
        add("effort 2 4:4:4", *libvips("avif", effort=2, subsample_mode="off"))
        for mode, label in (("on", "4:2:0"), ("off", "4:4:4")):
            add(f"effort 4 {label}", *libvips("avif", effort=4, subsample_mode=mode))
        if slow:
            add("effort 2 4:2:0", *libvips("avif", effort=2, subsample_mode="on"))
            for mode, label in (("on", "4:2:0"), ("off", "4:4:4")):
                add(f"effort 6 {label}", *libvips("avif", effort=6, subsample_mode=mode),
                    lanes=("avif-m",))
    return found


def ours_candidates(fmt: Format, found: list[Candidate]) -> dict[str, Candidate]:
    """The library's fast and final settings among ``found`` (added to it when missing)."""
    ours: dict[str, Candidate] = {}
    for effort in EFFORTS:
        setting = encoder_setting(fmt, effort)
        key = _setting_key(setting)
        match = next((c for c in found if c.setting and _setting_key(c.setting) == key
                      and c.pixels == effort), None)
        if match is None:
            match = Candidate(f"ours {effort}",
                              lambda image, q, s=setting: encode_image(image, fmt,
                                                                       s.with_quality(q)),
                              setting, quick=True, pixels=effort)
            found.append(match)
        match.quick = True
        ours[effort] = match
    return ours


def _setting_key(setting: EncoderSetting) -> tuple[str, tuple[tuple[str, str], ...]]:
    defaults = {"optimize_coding": False, "interlace": False, "trellis_quant": False,
                "overshoot_deringing": False, "optimize_scans": False, "quant_table": 0,
                "smart_subsample": False, "subsample_mode": "auto", "preset": "default",
                "smart_deblock": False}
    options = {**defaults, **setting.options} if setting.encoder == "libvips" else {
        "progressive": False, **setting.options}
    return setting.encoder, tuple(sorted((k, str(v)) for k, v in options.items()))


# ---- data of one run ---------------------------------------------------------------------------


@dataclass
class Rendition:
    data: bytes
    encode_s: float | None = None
    s2: float | None = None
    ssim: float | None = None


@dataclass
class Run:
    args: argparse.Namespace
    photos: list[Photo]
    lanes: list[Lane]
    qs: tuple[int, ...]
    sweeps: dict[tuple[str, str, str], dict[int, Rendition]] = field(default_factory=dict)
    """(lane, setting name, photo stem) -> q -> rendition; peers are settings named ipx etc."""
    single: dict[tuple[str, str, str], Rendition] = field(default_factory=dict)
    """(lane, "library fast" | "library final" | "server", photo stem) -> rendition."""
    settings: dict[str, list[Candidate]] = field(default_factory=dict)
    ours: dict[str, dict[str, Candidate]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    def skip(self, who: str, reason: str) -> None:
        print(f"SKIP {who}: {reason}", flush=True)
        self.skipped[who] = reason

    def size(self, lane: Lane) -> Size:
        return QUICK_SIZES[lane.size] if self.args.quick else lane.size


def lane_photos(run: Run, lane: Lane) -> list[Photo]:
    return run.photos


# ---- in-process: the library's pixels, candidates, transform -----------------------------------


def encoder_input(data: bytes, size: Size, fmt: Format, effort: Effort) -> pyvips.Image:
    """What ``transform`` hands its encoder: every pipeline step before ``encode``."""
    with ExitStack() as resources:
        job = Job(data=data, size=size, fmt=fmt, effort=effort,
                  setting=encoder_setting(fmt, effort),
                  max_pixels=transformer._pipeline.DEFAULT_MAX_PIXELS, deadline=Deadline(None),
                  resources=resources)
        for step in PIPELINE[:-1]:
            step(job)
        return job.require_image().copy_memory()


def timed(encode: Callable[[], bytes]) -> tuple[bytes, float]:
    """Bytes and CPU seconds (this process and its children), fastest of 3 if short."""
    best, data = float("inf"), b""
    for attempt in range(3):
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.process_time()
        data = encode()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        spent = time.process_time() - start + (after.ru_utime - children.ru_utime) + (
            after.ru_stime - children.ru_stime)
        best = min(best, spent)
        if attempt == 0 and spent > SHORT_ENCODE:
            break
    return data, best


def measure_in_process(run: Run) -> None:
    transformer.configure(vips_threads=1)
    for lane in run.lanes:
        size = run.size(lane)
        found = [c for c in candidates(lane.fmt, run.args.slow)
                 if not c.lanes or lane.name in c.lanes]
        run.ours[lane.name] = ours_candidates(lane.fmt, found)
        if run.args.quick:
            found = [c for c in found if c.quick]
        if run.args.settings:
            found = [c for c in found if run.args.settings.search(c.name)
                     or c in run.ours[lane.name].values()]
        run.settings[lane.name] = found
        for photo in lane_photos(run, lane):
            data = photo.path.read_bytes()
            inputs = {e: encoder_input(data, size, lane.fmt, e) for e in EFFORTS}
            print(f"  {lane.name} {photo.stem}: {inputs['final'].width}x"
                  f"{inputs['final'].height}", flush=True)
            configured = {c.name: encoder_setting(lane.fmt, e).quality
                          for e, c in run.ours[lane.name].items()}
            for candidate in found:
                pixels = inputs[candidate.pixels]
                sweep = run.sweeps.setdefault((lane.name, candidate.name, photo.stem), {})
                # Ours also at the q the library uses, so that its renditions are in the sweep.
                extra = configured.get(candidate.name)
                for q in sorted({*run.qs, *([extra] if extra else [])}):
                    try:
                        body, seconds = timed(
                            lambda c=candidate, q=q, image=pixels: c.encode(image, q))
                    except (RuntimeError, pyvips.Error, subprocess.CalledProcessError) as exc:
                        run.skip(f"{lane.name} {candidate.name}", str(exc)[:300])
                        break
                    sweep[q] = Rendition(body, seconds)
                print(f"    {candidate.name:40} "
                      + " ".join(f"q{q}:{len(r.data):>7,}/{1000 * (r.encode_s or 0):6.1f}ms"
                                 for q, r in sweep.items()), flush=True)
            for effort in EFFORTS:
                rendition = transformer.transform(data, size, lane.fmt, effort=effort)
                run.single[(lane.name, f"library {effort}", photo.stem)] = Rendition(
                    rendition.data)


# ---- over HTTP: our server and the peers -------------------------------------------------------


def _filename(photo: Photo) -> str:
    return f"{photo.stem}.{EXTENSIONS[photo.format]}"


def ipx_path(photo: Photo, lane: Lane, size: Size, q: int) -> str:
    edge = "h" if photo.landscape else "w"
    return f"/{edge}_{SHORT_EDGE[size]},q_{q},f_{lane.fmt}/{_filename(photo)}"


def thumbor_path(photo: Photo, lane: Lane, size: Size, q: int) -> str:
    target = SHORT_EDGE[size]
    box = f"0x{target}" if photo.landscape else f"{target}x0"
    return f"/unsafe/{box}/filters:quality({q}):format({lane.fmt}):no_upscale()/{_filename(photo)}"


def ours_path(photo: Photo, lane: Lane, size: Size) -> str:
    return f"/{TEAM}/{photo.stem}.{lane.fmt}?size={size}"


def _get(client: httpx.Client, url: str) -> bytes:
    response = client.get(url)
    kind = response.headers.get("content-type", "")
    if response.status_code != 200 or not kind.startswith("image/"):
        raise RuntimeError(f"GET {url} -> {response.status_code} {kind}: {response.text[:200]!r}")
    return response.content


def prepare_layout(root: Path, photos: Sequence[Photo]) -> None:
    """Originals for ours (``data/originals/<team>/<stem>``) and files for ipx and thumbor."""
    originals, files = root / "data" / "originals" / TEAM, root / "files"
    for folder in (originals, files):
        folder.mkdir(parents=True, exist_ok=True)
    for photo in photos:
        (originals / photo.stem).symlink_to(photo.path.resolve())
        (files / _filename(photo)).symlink_to(photo.path.resolve())


def measure_server(run: Run, root: Path) -> None:
    spec = participants.ours_spec(root / "data", workers=1, caches=False)
    try:
        with start(spec, root / "logs") as server, httpx.Client(timeout=600) as client:
            for lane in run.lanes:
                for photo in lane_photos(run, lane):
                    body = _get(client, server.url + ours_path(photo, lane, run.size(lane)))
                    run.single[(lane.name, "server", photo.stem)] = Rendition(body)
    except (ServerFailed, RuntimeError, httpx.HTTPError) as exc:
        run.skip("ours server", str(exc)[:600])


def measure_peers(run: Run, root: Path) -> None:
    files, work = root / "files", root / "work"
    work.mkdir(exist_ok=True)
    for peer in run.args.peers:
        try:
            if peer == "ipx":
                folder = participants.ensure_ipx(run.args.cache_dir)
                run.versions["ipx"] = "ipx {ipx} on sharp {sharp} / libvips {vips}".format(
                    **participants.ipx_versions(folder))
                spec, build = participants.ipx_spec(folder, files), ipx_path
            else:
                venv = participants.ensure_thumbor(run.args.cache_dir)
                run.versions["thumbor"] = "thumbor {thumbor} on Pillow {pillow}".format(
                    **participants.thumbor_versions(venv))
                spec, build = participants.thumbor_spec(venv, files, work), thumbor_path
        except participants.PeerUnavailable as exc:
            run.skip(peer, str(exc))
            continue
        print(f"  {peer} ...", flush=True)
        try:
            with start(spec, root / "logs") as server, httpx.Client(timeout=600) as client:
                for lane in run.lanes:
                    try:
                        for photo in lane_photos(run, lane):
                            sweep = run.sweeps.setdefault((lane.name, peer, photo.stem), {})
                            for q in run.qs:
                                url = server.url + build(photo, lane, run.size(lane), q)
                                sweep[q] = Rendition(_get(client, url))
                    except (RuntimeError, httpx.HTTPError) as exc:
                        run.skip(f"{lane.name} {peer}", str(exc)[:300])
        except ServerFailed as exc:
            run.skip(peer, str(exc)[:600])


# ---- scoring -----------------------------------------------------------------------------------


def _score_one_photo(path: str, bodies: list[bytes]) -> list[tuple[float, float]]:
    """(SSIMULACRA2, SSIM) of each rendition of one photo, against its reference at its size."""
    pyvips.concurrency_set(1)
    original = full_resolution(Path(path).read_bytes())
    references: dict[tuple[int, int], tuple[Any, Ssimulacra2Reference]] = {}
    scores = []
    for body in bodies:
        pixels = decoded(body)
        height, width = pixels.shape[:2]
        if (width, height) not in references:
            rgb = reference_at(original, width, height)
            references[(width, height)] = (rgb, Ssimulacra2Reference(rgb))
        rgb, reference = references[(width, height)]
        scores.append((reference.score(pixels), ssim_luma(rgb, pixels)))
    return scores


def _cache_key(photo: Photo, body: bytes) -> str:
    digest = hashlib.sha256(photo.path.name.encode() + b"\0" + body)
    return f"s2-{metadata.version('ssimulacra2')}-{digest.hexdigest()[:32]}"


def score_all(run: Run) -> None:
    cache_file = run.args.cache_dir / "quality-scores.json"
    cache: dict[str, list[float]] = {}
    if cache_file.exists() and not run.args.no_score_cache:
        cache = json.loads(cache_file.read_text())
    per_photo: dict[str, list[Rendition]] = {}
    stems = {p.stem: p for p in run.photos}
    everything = [((key[2]), r) for key, sweep in run.sweeps.items() for r in sweep.values()]
    everything += [(key[2], r) for key, r in run.single.items()]
    for stem, rendition in everything:
        hit = cache.get(_cache_key(stems[stem], rendition.data))
        if hit:
            rendition.s2, rendition.ssim = hit
        else:
            per_photo.setdefault(stem, []).append(rendition)
    todo = sum(map(len, per_photo.values()))
    print(f"scoring {todo} renditions ({len(everything) - todo} cached) on {run.args.jobs} "
          "processes ...", flush=True)
    started = time.monotonic()
    with ProcessPoolExecutor(run.args.jobs) as pool:
        futures = {}
        for stem, renditions in per_photo.items():
            # Unique bodies only: the same bytes from two settings are scored once.
            unique = list({r.data: None for r in renditions})
            futures[stem] = (unique, pool.submit(_score_one_photo, str(stems[stem].path), unique))
        for stem, (unique, future) in futures.items():
            scores = dict(zip(unique, future.result(), strict=True))
            for rendition in per_photo[stem]:
                rendition.s2, rendition.ssim = scores[rendition.data]
                cache[_cache_key(stems[stem], rendition.data)] = [rendition.s2, rendition.ssim]
            print(f"  scored {stem} ({time.monotonic() - started:.0f} s)", flush=True)
    run.args.cache_dir.mkdir(parents=True, exist_ok=True)
    cache_file.write_text(json.dumps(cache))


# ---- the figures -------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    bytes_at_target: float
    vs_ipx: float
    median_vs_ipx: float
    max_vs_today: float | None
    worst_photo: str
    matched_q: float | None
    q_range: tuple[float, float] | None
    encode_ms: float | None
    ssim_vs_ipx: float | None
    extrapolated: int
    photos: int
    per_photo: dict[str, float]


def lane_rows(run: Run, lane: Lane) -> tuple[list[Row], list[Photo]]:
    """One row per setting and peer, over the photos every row has."""
    names = [c.name for c in run.settings.get(lane.name, [])] + [
        p for p in run.args.peers if any(k[:2] == (lane.name, p) for k in run.sweeps)]
    photos = [p for p in lane_photos(run, lane)
              if not (lane.fmt == "jpeg" and _has_alpha(p))
              and _complete(run, lane, "ipx", p)]
    targets = {p.stem: run.sweeps[(lane.name, "ipx", p.stem)][REFERENCE_Q] for p in photos}
    ipx_bytes = [len(targets[p.stem].data) for p in photos]
    today_name = TODAY_NAME
    rows: list[Row] = []
    today_at: dict[str, float] = {}
    for name in [today_name] + [n for n in names if n != today_name]:
        if name not in names or not all(_complete(run, lane, name, p) for p in photos):
            continue
        at, ratios, qs, extrapolated, ssim_at = {}, [], [], 0, []
        for photo, ipx in zip(photos, ipx_bytes, strict=True):
            sweep = run.sweeps[(lane.name, name, photo.stem)]
            target = targets[photo.stem]
            points = [(r.s2, len(r.data)) for r in sweep.values()]
            size, out = log_bytes_at_score(points, target.s2)  # type: ignore[arg-type]
            extrapolated += out
            at[photo.stem] = size
            ratios.append(size / ipx)
            qs.append(q_at_score([(q, r.s2) for q, r in sweep.items()], target.s2))  # type: ignore[misc]
            ssim_points = [(r.ssim, len(r.data)) for r in sweep.values()]
            ssim_at.append(log_bytes_at_score(ssim_points, target.ssim)[0])  # type: ignore[arg-type]
        if name == today_name:
            today_at = at
        vs_today = {s: at[s] / today_at[s] for s in at} if today_at else {}
        worst = max(vs_today, key=vs_today.__getitem__) if vs_today else ""
        matched = statistics.median(qs)
        times = []
        for photo in photos:
            sweep = run.sweeps[(lane.name, name, photo.stem)]
            times.append(sweep[min(sweep, key=lambda q: abs(q - matched))].encode_s)
        rows.append(Row(
            name, _mean(list(at.values())), _mean(list(at.values())) / _mean(ipx_bytes),
            statistics.median(ratios), vs_today[worst] if worst else None, worst, matched,
            (min(qs), max(qs)),
            1000 * _mean(times) if all(t is not None for t in times) else None,  # type: ignore[arg-type]
            _mean(ssim_at) / _mean(ipx_bytes), extrapolated, len(photos), at))
    return rows, photos


def _complete(run: Run, lane: Lane, name: str, photo: Photo) -> bool:
    sweep = run.sweeps.get((lane.name, name, photo.stem), {})
    return set(run.qs) <= set(sweep) and all(r.s2 is not None for r in sweep.values())


def _has_alpha(photo: Photo) -> bool:
    return bool(pyvips.Image.new_from_buffer(photo.path.read_bytes(), "").hasalpha())


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def single_point_rows(run: Run, lane: Lane, photos: list[Photo]) -> list[str]:
    """Our library's transform and our server, each at its one setting, against the sweeps."""
    lines = []
    ours = run.ours.get(lane.name, {})
    for who in [f"library {e}" for e in EFFORTS] + ["server"]:
        renditions = [run.single.get((lane.name, who, p.stem)) for p in photos]
        if not all(renditions) or any(r.s2 is None for r in renditions if r):
            continue
        effort = who.split()[-1] if who != "server" else DEFAULT_EFFORT
        candidate = ours.get(effort)
        same = 0
        if candidate is not None:
            sweeps = [run.sweeps.get((lane.name, candidate.name, p.stem), {}) for p in photos]
            same = sum(any(r.data == x.data for x in sweep.values())  # type: ignore[union-attr]
                       for r, sweep in zip(renditions, sweeps, strict=True))
        setting = encoder_setting(lane.fmt, effort)  # type: ignore[arg-type]
        lines.append(
            f"| {who} | {candidate.name if candidate else '?'} q{setting.quality} | "
            f"{_mean([len(r.data) for r in renditions if r]):,.0f} | "
            f"{_mean([r.s2 for r in renditions if r and r.s2 is not None]):.2f} | "
            f"{same}/{len(photos)} |")
    return lines


def render_report(run: Run, command: str, started: dt.datetime, host: str) -> str:
    quick = " (QUICK smoke run: 3 photos, size s, q 70-90)" if run.args.quick else ""
    out = [
        "# Quality benchmark: bytes at equal SSIMULACRA2, per format and encoder setting",
        "",
        f"- date: {started:%Y-%m-%d %H:%M} UTC{quick}",
        f"- command: `{command}`",
        f"- host: {host}",
        f"- corpus: {len(run.photos)} photos from {corpus_label(run.args.corpus)}; q sweep "
        f"{', '.join(map(str, run.qs))}; target score per photo = ipx's at q{REFERENCE_Q}",
        f"- libvips {pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)} (pyvips-binary "
        f"{_version('pyvips-binary')}), pyjpegli {_version('pyjpegli')}, ssimulacra2 "
        f"{_version('ssimulacra2')}; " + "; ".join(f"{k}: {v}" for k, v in run.versions.items()),
        "- bytes at target: per photo, log(bytes) interpolated linearly in SSIMULACRA2 along the "
        "setting's own q sweep, at the score ipx reaches at q80; `vs ipx` = mean of those / mean "
        "of ipx's q80 bytes; `median` = per-photo median of the same ratio; `max vs today` = the "
        "largest per-photo ratio to today's setting (e4) at that score; `q` = median (range) of "
        "the q at which the setting reaches the score; `encode ms` = mean CPU time of one encode "
        "at the sweep q nearest that median, in-process, libvips at 1 thread, fastest of 3 under "
        "0.2 s (peers: not timed here); `decode` = the pixels encoded: `transform`'s at effort "
        "fast (today's JPEG shrink-on-load) or final (less shrink-on-load where the reduce "
        "would alias), or the peer's own; `SSIM vs ipx` = the bytes ratio at equal SSIM (luma) "
        "instead, the cross-check; `extrap.` = photos whose target lay outside the sweep.",
        "",
    ]
    for lane in run.lanes:
        rows, photos = lane_rows(run, lane)
        if not rows:
            continue
        size = run.size(lane)
        ours = run.ours.get(lane.name, {})
        marks = {c.name: [e for e, o in ours.items() if o.name == c.name] for c in ours.values()}
        left_out = " (photos with alpha left out)" if lane.fmt == "jpeg" else ""
        out += [f"## {lane.label} (lane {lane.name}, rendered at size {size}), {len(photos)} "
                f"photos{left_out}", "",
                "| setting | decode | bytes at target | vs ipx | median | max vs today | q "
                "| encode ms | SSIM vs ipx | extrap. |",
                "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        decodes = {c.name: c.pixels for c in run.settings.get(lane.name, [])}
        for row in rows:
            mark = "".join(f" **[ours {e}]**" for e in marks.get(row.name, []))
            today = (f"{row.max_vs_today:.3f} ({row.worst_photo.split('-')[1]})"
                     if row.max_vs_today is not None else "")
            q = (f"{row.matched_q:.0f} ({row.q_range[0]:.0f}-{row.q_range[1]:.0f})"
                 if row.matched_q is not None and row.q_range else "")
            encode = f"{row.encode_ms:.1f}" if row.encode_ms is not None and row.name not in \
                PEERS else ""
            out.append(f"| {row.name}{mark} | {decodes.get(row.name, 'own')} | "
                       f"{row.bytes_at_target:,.0f} | {row.vs_ipx:.3f} | "
                       f"{row.median_vs_ipx:.3f} | {today} | {q} | {encode} | "
                       f"{row.ssim_vs_ipx:.3f} | {row.extrapolated} |")
        singles = single_point_rows(run, lane, photos)
        if singles:
            out += ["", f"Our renditions at their configured q ({size} {lane.fmt}): "
                    "`same bytes` = photos whose rendition is byte-identical to one of the "
                    "setting's sweep encodes above (so the row above is what they are).", "",
                    "| rendered by | setting | mean bytes | mean SSIMULACRA2 | same bytes |",
                    "| --- | --- | ---: | ---: | ---: |", *singles]
        out.append("")
    if run.skipped:
        out += ["## Skipped", "", *[f"- {k}: {v}" for k, v in run.skipped.items()], ""]
    return "\n".join(out)


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def raw_json(run: Run) -> dict[str, Any]:
    return {
        "qs": run.qs,
        "sweeps": [{"lane": k[0], "setting": k[1], "photo": k[2], "q": q, "bytes": len(r.data),
                    "encode_s": r.encode_s, "ssimulacra2": r.s2, "ssim": r.ssim}
                   for k, sweep in run.sweeps.items() for q, r in sweep.items()],
        "single": [{"lane": k[0], "who": k[1], "photo": k[2], "bytes": len(r.data),
                    "ssimulacra2": r.s2, "ssim": r.ssim} for k, r in run.single.items()],
        "skipped": run.skipped,
    }


# ---- command line ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    import re

    parser = argparse.ArgumentParser(prog="python -m bench.quality", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="3 photos at size s, q 70/80/90, today's and our settings only")
    parser.add_argument("--lanes", default=",".join(lane.name for lane in LANES),
                        help="comma-separated subset of " + ",".join(x.name for x in LANES))
    parser.add_argument("--settings", type=re.compile, default=None,
                        help="regular expression: only candidate settings whose name matches "
                             "(ours always run)")
    parser.add_argument("--photos", default=None,
                        help="first N corpus photos only, or comma-separated parts of names")
    parser.add_argument("--qs", type=lambda s: tuple(int(x) for x in s.split(",")), default=None)
    parser.add_argument("--peers", type=lambda s: [p for p in s.split(",") if p],
                        default=list(PEERS))
    parser.add_argument("--slow", action="store_true",
                        help="also AVIF effort 6 (m) and effort 2 4:2:0 (see candidates)")
    parser.add_argument("--no-server", action="store_true")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2,
                        help="scoring processes")
    parser.add_argument("--corpus", type=Path, default=None,
                        help="photos + MANIFEST.tsv (default: IMGPRO_CORPUS, ../shared/corpus)")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--no-score-cache", action="store_true")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / "quality.md")
    parser.add_argument("--docs-copy", type=Path, default=None,
                        help="also write the markdown here (default docs/bench-quality.md for a "
                             "full run)")
    args = parser.parse_args(argv)
    names = {lane.name for lane in LANES}
    args.lanes = [x for x in args.lanes.split(",") if x]
    if set(args.lanes) - names:
        parser.error(f"unknown lanes: {', '.join(sorted(set(args.lanes) - names))}")
    if set(args.peers) - set(PEERS):
        parser.error(f"unknown peers: {', '.join(args.peers)}")
    full = (not args.quick and args.settings is None and args.photos is None and args.qs is None
            and len(args.lanes) == len(LANES) and "ipx" in args.peers)
    if args.docs_copy is None and full:
        args.docs_copy = REPO_ROOT / "docs" / "bench-quality.md"
    if "ipx" not in args.peers:
        parser.error("ipx sets the target score: it cannot be left out")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    host = host_line()
    args.corpus = corpus_dir(args.corpus)
    photos = load_photos(args.corpus)
    if args.quick:
        photos = [p for p in photos if p.path.name in QUICK_PHOTOS]
    if args.photos and args.photos.isdigit():
        photos = photos[: int(args.photos)]
    elif args.photos:
        parts = args.photos.split(",")
        photos = [p for p in photos if any(part in p.path.name for part in parts)]
    lanes = [lane for lane in LANES if lane.name in args.lanes]
    run = Run(args, photos, lanes, args.qs or (QUICK_QS if args.quick else QS))
    print(f"{len(photos)} photos, lanes {', '.join(x.name for x in lanes)}, q {run.qs}",
          flush=True)
    print("in-process encodes:", flush=True)
    measure_in_process(run)
    with tempfile.TemporaryDirectory(prefix="imgpro-quality-") as tmp:
        root = Path(tmp)
        prepare_layout(root, photos)
        if not args.no_server:
            print("our server:", flush=True)
            measure_server(run, root)
        print("peers:", flush=True)
        measure_peers(run, root)
    score_all(run)
    report = render_report(run, command_line("bench.quality", argv), started, host)
    publish(report, (args.out, args.docs_copy))
    args.out.with_suffix(".json").write_text(json.dumps(raw_json(run)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
