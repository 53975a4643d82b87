"""Draw docs/respine.png: a real back moved onto a requested spine (``--donor-start``), and the generator started
from it. Per requested spine: the nearest PCdare donor with its own ESL, the donor moved onto the requested lines
(:func:`pcdiff.data.respine.respine_donor`, turn gain fitted on the donors), and the shipped pipeline's back started
from that at strength 0.2, each with the requested ESL drawn (back view, colour = depth).

    python docs/respine.py [docs/respine.png]     # ~40 s on 2 CPU cores; needs ../shared/data/pcdare (CC BY-NC-SA 4.0)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from pcdiff.data.pcdare import read_pcdare
from pcdiff.data.phantom import SpineParams, spine_lines
from pcdiff.generate import DonorStart, SpineRequest
from pcdiff.geometry.frames.normalisation import line_frame, to_mm, to_normalised
from pcdiff.pipelines import SpineToBackPipeline
from pcdiff.viz.static import save_point_cloud_figure

SPINES = {
    "45° right thoracic": SpineParams(cobb_deg=45.0, curve_type="thoracic", convexity="right"),
    "35° left lumbar": SpineParams(cobb_deg=35.0, curve_type="lumbar", apex="L2", convexity="left"),
}
NUM_POINTS = 2048
STRENGTH = 0.2


def main(out: Path, pipeline: Path, donors_dir: Path) -> None:
    pipe = SpineToBackPipeline.from_pretrained(pipeline)
    pipe.set_progress_bar_config(disable=True)
    donors = read_pcdare(donors_dir, skip_invalid=True)
    start = DonorStart(donors, NUM_POINTS)
    clouds, spines, titles = [], [], []
    for label, params in SPINES.items():
        esl, isl = spine_lines(params)
        request = SpineRequest(label, esl, lines={"esl": esl, "isl": isl})
        moved, name = start(request, seed=0, copy=0)
        donor = next(d for d in start.donors if d.name == name)
        generated = pipe(esl, generator=torch.Generator().manual_seed(0), init_backs=moved[None], strength=STRENGTH).backs[0]
        pick = np.random.default_rng(0).choice(len(donor.points), NUM_POINTS, replace=False)
        placed = [to_mm(to_normalised(x, *line_frame(donor.esl)), *line_frame(esl)) for x in (donor.points[pick], donor.esl)]
        clouds += [placed[0], moved, generated]
        spines += [placed[1], esl, esl]
        titles += [f"donor {name}, placed as retrieval (its ESL)", f"moved onto the {label} lines",
                   f"shipped pipeline from it, strength {STRENGTH:g}"]
    save_point_cloud_figure(out, clouds, spines, titles, views=("back",), clouds_per_row=3)
    print(f"wrote {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, nargs="?", default=Path("docs/respine.png"))
    parser.add_argument("--pipeline", type=Path, default=Path("pretrained/phantom-pvcnn"))
    parser.add_argument("--donors", type=Path, default=Path("../shared/data/pcdare"))
    args = parser.parse_args()
    main(args.out, args.pipeline, args.donors)
