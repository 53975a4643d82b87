"""Figure of a few phantoms side by side (straight and scoliotic): ``docs/phantom.png``.

    python -m benchmarks.phantom_figure [--out docs/phantom.png] [--points 6000] [--version v2]

Top row: the back as the scanner sees it (x-y, coloured by depth z), with the external spinal line
(ESL, red, on the skin), the internal spinal line (ISL, blue, vertebral bodies) and the landmarks
C7, DL, DR, DM. Bottom row: seen from the side (z-y).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.reporting import ROOT  # noqa: E402
from pcdiff.data.phantom import DEFAULT_VERSION, VERSIONS, SpineParams, generate_phantom  # noqa: E402

EXAMPLES = [
    SpineParams(length_mm=430.0, cobb_deg=4.0, curve_type="none", apex="T8", convexity="right"),
    SpineParams(length_mm=450.0, cobb_deg=40.0, curve_type="thoracic", apex="T8", convexity="right", rotation_deg=14.0),
    SpineParams(length_mm=420.0, cobb_deg=30.0, curve_type="lumbar", apex="L2", convexity="left", rotation_deg=10.0),
    SpineParams(length_mm=470.0, cobb_deg=55.0, curve_type="double_major", apex="T8", convexity="right",
                secondary_ratio=0.9, rotation_deg=20.0),
    SpineParams(length_mm=400.0, cobb_deg=70.0, curve_type="thoracolumbar", apex="T12", convexity="left", rotation_deg=25.0),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "phantom.png")
    parser.add_argument("--points", type=int, default=4096)
    parser.add_argument("--version", choices=VERSIONS, default=DEFAULT_VERSION)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)
    fig, axes = plt.subplots(2, len(EXAMPLES), figsize=(3.6 * len(EXAMPLES), 9.5),
                             gridspec_kw={"height_ratios": [1.0, 1.0]})
    for k, params in enumerate(EXAMPLES):
        scan = generate_phantom([args.seed, k], args.points, params=params, version=args.version)
        p, esl, isl = scan.points, scan.esl, scan.isl
        lm = np.stack([scan.landmarks[n] for n in ("C7", "DL", "DR", "DM")])
        ax = axes[0, k]
        ax.scatter(p[:, 0], p[:, 1], c=p[:, 2], s=1.0, cmap="viridis")
        ax.plot(esl[:, 0], esl[:, 1], color="tab:red", lw=1.5, label="ESL")
        ax.plot(isl[:, 0], isl[:, 1], color="tab:blue", lw=1.5, label="ISL")
        ax.scatter(lm[:, 0], lm[:, 1], color="k", s=14, zorder=3)
        for name, xyz in zip(("C7", "DL", "DR", "DM"), lm):
            ax.annotate(name, xyz[:2], xytext=(3, 3), textcoords="offset points", fontsize=7)
        title = "no scoliosis" if params.curve_type == "none" else f"{params.curve_type.replace('_', ' ')}, {params.convexity}"
        ax.set_title(f"{title}\nCobb {params.cobb_deg:.0f}°", fontsize=9)
        ax.set_aspect("equal")
        ax.set_xlabel("x (mm, + = right)")
        ax = axes[1, k]
        ax.scatter(p[:, 2], p[:, 1], c=p[:, 0], s=1.0, cmap="coolwarm")
        ax.plot(esl[:, 2], esl[:, 1], color="tab:red", lw=1.5)
        ax.plot(isl[:, 2], isl[:, 1], color="tab:blue", lw=1.5)
        ax.set_aspect("equal")
        ax.set_xlabel("z (mm, towards the scanner)")
    axes[0, 0].set_ylabel("y (mm, up); colour: z")
    axes[1, 0].set_ylabel("y (mm); colour: x")
    axes[0, 0].legend(loc="lower left", fontsize=7)
    fig.suptitle(f"pcdiff phantoms ({args.version}): back view (top) and side view (bottom), {args.points} points", fontsize=11)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=70)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
