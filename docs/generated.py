"""Draw docs/generated.png: generated backs for a straight spine and a 40 deg thoracic curve, beside phantom
scans for the same spines (what the model was trained to imitate).

    python -m pcdiff.generate --pipeline pretrained/phantom-pvcnn --cobb 0 40 --curve-type thoracic \
        --num-points 2048 --out outputs/generated_shipped --seed 0
    python docs/generated.py outputs/generated_shipped docs/generated.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pcdiff.data.io import read_subject
from pcdiff.data.phantom import SpineParams, generate_phantom
from pcdiff.viz import save_point_cloud_figure


def main(generated: Path, out: Path) -> None:
    clouds, titles = [], []
    for cobb in (0, 40):
        scan = read_subject(generated / f"cobb{cobb}p0_curve_typethoracic")
        phantom = generate_phantom(0, num_points=len(scan.points), params=SpineParams(cobb_deg=float(cobb), curve_type="thoracic"))
        clouds += [scan, phantom]
        label = "straight spine" if cobb == 0 else "40° thoracic"
        titles += [f"generated, {label}", f"phantom, {label}"]
    save_point_cloud_figure(out, clouds, titles=titles, views=("back", "side"), clouds_per_row=2, dpi=90)
    print(f"wrote {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("generated", type=Path, nargs="?", default=Path("outputs/generated_shipped"),
                        help="folder written by the pcdiff.generate command above")
    parser.add_argument("out", type=Path, nargs="?", default=Path("docs/generated.png"))
    args = parser.parse_args()
    if not args.generated.is_dir():
        parser.error(f"{args.generated}: no such folder; run the pcdiff.generate command in this script's docstring first")
    main(args.generated, args.out)
