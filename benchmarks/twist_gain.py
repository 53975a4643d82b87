"""The gain of the untwisted frame (``model.twist_gain``), fitted on phantoms and, for comparison, on real backs.

:func:`pcdiff.geometry.frames.fit_twist_gain` regresses each back's left-right depth asymmetry beside its ESL on the
ESL's lateral deviation from its chord, in the normalised "line" frame the generator trains in (the ESL's length = 1;
asymmetry read 0.11, about 50 mm, either side). Rows: phantoms of the default prior (the generator's training
distribution; ``--phantoms`` draws from seed ``--seed`` on), and the real PCdare backs. Beside each gain: how much of
the asymmetry's RMS (read along the straightened line) the untwisting removes, and the median over backs of the
correlation between a back's asymmetry and its deviation.

Beside the turn, the sideways shift: how far the trunk's outline follows the line (:func:`outline_follow`; 1 = the
outline's midpoint moves with the ESL, 0 = it stays on the chord while the spinous processes curve). ``--backs
LABEL=NPZ`` adds rows of saved backs (``generator_ablation --save-backs``: ``backs_mm`` and ``esl_mm_<i>``), so
generated backs are read the same way.

    python -m benchmarks.twist_gain [--phantoms 60 --seed 1000] [--data ../shared/data/pcdare] [--backs LABEL=NPZ ...]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.judge_backs import load_backs, parse_backs
from benchmarks.reporting import DEFAULT_PCDARE, command_line, finished_run, hardware_info, load_line, markdown_table, publish
from pcdiff.data.sample import BackScan
from pcdiff.geometry.frames import fit_twist_gain, line_frame, straighten, to_normalised, untwist
from pcdiff.geometry.frames.twisted import deviation_at_height
from pcdiff.geometry.polyline import orient_top_down, resample_polyline
from pcdiff.metrics.spine import surface_asymmetry

#: Asymmetry read this far either side of the line, and over this radius (normalised units, ~50 mm and ~7 mm).
DISTANCE, RADIUS = 0.11, 0.015
NUM_KEYPOINTS = 16
#: The outline is read in this many horizontal bands over the inner 90% of the line's height, each this half-thick
#: (normalised, ~15 mm), as the midpoint of its 3rd and 97th lateral percentiles.
OUTLINE_BANDS, OUTLINE_HALF_THICKNESS, OUTLINE_PERCENTILES = 12, 0.03, (3.0, 97.0)


def normalised(scan: BackScan) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) points and (16, 3) ESL keypoints (top -> bottom) of ``scan`` in its "line" frame."""
    center, scale = line_frame(scan.esl)
    line = resample_polyline(orient_top_down(to_normalised(scan.esl.astype(np.float64), center, scale)), NUM_KEYPOINTS)
    return to_normalised(scan.points.astype(np.float64), center, scale), line.astype(np.float64)


def outline_follow(straight: torch.Tensor, line: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The ESL's deviation from its chord and the outline's, per band: (H,) each, normalised units (NaN: too few points).

    Args:
        straight: (1, N, 3) a back straightened on its line (x = lateral offset from the line at the point's height).
        line: (1, K, 3) its ESL keypoints, top to bottom.

    The outline's midpoint in the straightened frame is its offset from the line, so its offset from the chord is that
    plus the line's own deviation; regress it on the deviation to get how far the outline follows the line.
    """
    top, bottom = float(line[0, 0, 1]), float(line[0, -1, 1])
    margin = 0.05 * (top - bottom)
    heights = np.linspace(top - margin, bottom + margin, OUTLINE_BANDS)
    deviation = deviation_at_height(line, torch.as_tensor(heights, dtype=line.dtype)[None])[0].numpy()
    points = straight[0].numpy()
    offset = np.full(OUTLINE_BANDS, np.nan)
    for i, h in enumerate(heights):
        band = points[np.abs(points[:, 1] - h) < OUTLINE_HALF_THICKNESS, 0]
        if len(band) >= 20:
            offset[i] = np.mean(np.percentile(band, OUTLINE_PERCENTILES))
    return deviation, offset + deviation


def fit_row(label: str, scans: list[BackScan]) -> dict[str, Any]:
    """Gain, asymmetry RMS before / after untwisting by it, the median per-back correlation, and how far the outline
    follows the line (slope and correlation over all bands of all backs), for ``scans``."""
    backs, lines = zip(*(normalised(s) for s in scans))
    gain = fit_twist_gain(list(backs), list(lines), DISTANCE, RADIUS)
    before, after, corr, deviations, outlines = [], [], [], [], []
    for points, line in zip(backs, lines):
        p, l = torch.from_numpy(points)[None], torch.from_numpy(line)[None]
        axis = np.column_stack([np.zeros(len(line)), line[:, 1], np.zeros(len(line))])  # the line, straightened
        straight = straighten(p, l)
        a0 = surface_asymmetry(straight[0].numpy(), axis, DISTANCE, RADIUS)
        a1 = surface_asymmetry(untwist(straight, l, gain)[0].numpy(), axis, DISTANCE, RADIUS)
        d = deviation_at_height(l, l[..., 1])[0].numpy()
        before.append(np.sqrt(np.mean(a0**2)))
        after.append(np.sqrt(np.mean(a1**2)))
        if a0.std() > 0 and d.std() > 0:
            corr.append(np.corrcoef(a0, d)[0, 1])
        deviation, outline = outline_follow(straight, l)
        deviations.append(deviation)
        outlines.append(outline)
    deviation, outline = np.concatenate(deviations), np.concatenate(outlines)
    ok = np.isfinite(outline)
    return {"backs": label, "n": len(scans), "gain": gain, "asym_rms_before": float(np.mean(before)),
            "asym_rms_after": float(np.mean(after)), "median_corr": float(np.median(corr)),
            "outline_gain": float(np.polyfit(deviation[ok], outline[ok], 1)[0]),
            "outline_corr": float(np.corrcoef(deviation[ok], outline[ok])[0, 1])}  # fmt: skip


def saved_backs(path: Path) -> list[BackScan]:
    """The backs of a ``generator_ablation --save-backs`` file (read by :func:`benchmarks.judge_backs.load_backs`,
    which names the file when it is not one) as scans with their requested ESL (mm)."""
    saved = load_backs(path)
    return [BackScan(name=f"{path.stem}_{i}", points=back, esl=esl) for i, (back, esl) in enumerate(zip(saved["backs"], saved["esl"]))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phantoms", type=int, default=60, help="phantoms of the default prior")
    parser.add_argument("--seed", type=int, default=1000, help="seed of the first phantom (one seed per phantom)")
    parser.add_argument("--num-points", type=int, default=8192, help="points per phantom")
    parser.add_argument("--data", type=Path, default=DEFAULT_PCDARE, help="PCdare folder (read in place); skipped when absent")
    parser.add_argument("--backs", action="append", default=[], type=parse_backs, metavar="LABEL=NPZ",
                        help="also saved backs (generator_ablation --save-backs), e.g. generated=outputs/backs/x.npz")
    parser.add_argument("--stem", default="twist_gain")
    args = parser.parse_args(argv)
    if args.phantoms < 1:
        parser.error("--phantoms must be >= 1")
    from pcdiff.data.phantom.generator import generate_phantom

    info, start = hardware_info(), time.perf_counter()
    rows = [fit_row(f"phantoms (seeds {args.seed}-{args.seed + args.phantoms - 1}, {args.num_points} points)",
                    [generate_phantom(args.seed + i, num_points=args.num_points) for i in range(args.phantoms)])]
    if args.data.is_dir():
        from pcdiff.data.pcdare import read_pcdare

        rows.append(fit_row("PCdare (real)", list(read_pcdare(args.data))))
    rows += [fit_row(f"{label} (`{path}`)", saved_backs(path)) for label, path in args.backs]
    record = finished_run(info, time.perf_counter() - start)
    columns = [("backs", "backs", ""), ("n", "n", "d"), ("gain", "twist gain", ".2f"),
               ("asym_rms_before", "asymmetry RMS, straightened", ".4f"),
               ("asym_rms_after", "the same, untwisted", ".4f"), ("median_corr", "median corr. asymmetry ~ deviation", ".2f"),
               ("outline_gain", "outline follows the line (slope)", ".2f"), ("outline_corr", "outline ~ deviation corr.", ".2f")]
    md = "\n".join([
        "# Gain of the untwisted frame (pcdiff.geometry.frames.twisted)", "", f"`{command_line()}`", "",
        markdown_table(rows, columns), "",
        f"Normalised \"line\" frame (the ESL's length = 1), {NUM_KEYPOINTS} ESL keypoints; asymmetry = depth difference"
        f" {DISTANCE} either side of the line (radius {RADIUS}), read along the straightened line before and after"
        " untwisting by the row's own gain, RMS over keypoints, mean over backs. The asymmetry left after untwisting is"
        " the part the line does not predict (a constant twist of the whole trunk, the gain's spread between bodies).",
        "",
        f"Outline: per back, {OUTLINE_BANDS} horizontal bands over the inner 90% of the line's height (half-thickness"
        f" {OUTLINE_HALF_THICKNESS}); the midpoint of each band's {OUTLINE_PERCENTILES[0]:g}% and"
        f" {OUTLINE_PERCENTILES[1]:g}% lateral percentiles, measured from the ESL's chord, regressed on the ESL's own"
        " deviation from its chord over all bands of all backs (1: the trunk moves sideways with the spinous processes;"
        " 0: it stays on the chord).",
        "", load_line(record),
    ])
    return publish(args.stem, {**record, "settings": {k: str(v) for k, v in vars(args).items()}, "rows": rows}, md)


if __name__ == "__main__":
    raise SystemExit(main())
