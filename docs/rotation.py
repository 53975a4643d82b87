"""Draw docs/rotation.png: does a generated back carry its spine's rotation (rib hump)? Left-right depth asymmetry
beside the ESL along the back, for phantom scans of three curves, the shipped pipeline's backs from noise, and its
backs started from a phantom of the same lines (``--phantom-start``, SDEdit).

    python docs/rotation.py [docs/rotation.png]      # ~1 min on 2 CPU cores (pretrained/phantom-pvcnn, no training)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from pcdiff.data.phantom import SpineParams, generate_phantom, phantom_for_lines
from pcdiff.geometry.polyline import resample_polyline
from pcdiff.metrics.spine import ASYMMETRY_RADIUS_MM, surface_asymmetry
from pcdiff.pipelines import SpineToBackPipeline

SPINES = {
    "45° right thoracic": SpineParams(cobb_deg=45.0, curve_type="thoracic", convexity="right", rotation_deg=15.0),
    "35° left lumbar": SpineParams(cobb_deg=35.0, curve_type="lumbar", apex="L2", convexity="left", rotation_deg=12.0),
    "50° double major": SpineParams(cobb_deg=50.0, curve_type="double_major", convexity="right", rotation_deg=17.0),
}
NUM_POINTS = 2048
STRENGTH = 0.2


def profile(points: np.ndarray, esl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(heights (K,) mm, centred asymmetry (K,) mm) beside 40 keypoints of the ESL, ends trimmed as the metric does."""
    keypoints = resample_polyline(esl, 50)[5:-5].astype(np.float64)
    radius = ASYMMETRY_RADIUS_MM * np.sqrt(16384 / len(points))
    asym = surface_asymmetry(points, keypoints, radius_mm=radius)
    return keypoints[:, 1], asym - asym.mean()


def main(out: Path, pipeline: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pipe = SpineToBackPipeline.from_pretrained(pipeline)
    pipe.set_progress_bar_config(disable=True)
    fig, axes = plt.subplots(1, len(SPINES), figsize=(4.2 * len(SPINES), 4.6), sharey=False)
    for ax, (label, params) in zip(axes, SPINES.items()):
        scan = generate_phantom(0, NUM_POINTS, params=params)
        start = phantom_for_lines(scan.esl, scan.isl, seed=1, num_points=NUM_POINTS).points
        noise = pipe(scan.esl, generator=torch.Generator().manual_seed(0), num_points=NUM_POINTS).backs[0]
        started = pipe(scan.esl, generator=torch.Generator().manual_seed(0), init_backs=start[None],
                       strength=STRENGTH).backs[0]
        curves = [(scan.points, "phantom scan (truth)", "k", "-"), (noise, "generated from noise", "tab:red", "-"),
                  (started, f"generated from a phantom, strength {STRENGTH:g}", "tab:blue", "-"),
                  (start, "that phantom (another body)", "tab:blue", ":")]
        for points, name, colour, style in curves:
            heights, asym = profile(points, scan.esl)
            ax.plot(asym, heights, style, color=colour, label=name, lw=1.8)
        ax.axvline(0, color="0.8", lw=0.8)
        ax.set_title(label)
        ax.set_xlabel("right minus left depth, 50 mm beside the ESL (mm)")
    axes[0].set_ylabel("height above DM (mm)")
    axes[0].legend(loc="lower left", fontsize=8)
    fig.suptitle("Rib hump / lumbar prominence of the spine's rotation (shipped pipeline, 2048 points)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, nargs="?", default=Path("docs/rotation.png"))
    parser.add_argument("--pipeline", type=Path, default=Path("pretrained/phantom-pvcnn"))
    args = parser.parse_args()
    main(args.out, args.pipeline)
