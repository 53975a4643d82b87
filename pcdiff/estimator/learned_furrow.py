"""The spinal furrow traced through a learned cost: which depth features mark the ESL, fitted on backs whose ESL is known.

:func:`pcdiff.estimator.furrow.furrow_path_x` traces the ESL through a hand-made cost (the high-passed depth at two
scales). Here the cost of each band x lateral bin is a weighted sum of features of the back's depth around it
(:func:`band_features`), and the weights are fitted on training backs: per band, the probability that the ESL passes
through bin j is ``softmax_j(-cost)``, and the weights maximise the likelihood of the true ESL's bins (a conditional
logit; :func:`fit_furrow_cost`). The path is then traced through that cost exactly as the hand-made one is
(:func:`pcdiff.estimator.furrow.path_through`: dynamic programming with a squared-step penalty, optional top
re-anchoring on the symmetry axis).

Features of a bin (``F`` = 13 per height node, :data:`FEATURE_NAMES`):

- the band's depth high-passed at each of ``params.scales_mm`` (3, 6, 12, 25, 50 mm: a spinous-process bump at the
  small scales, the furrow's V and trough at the larger), divided by the band's SD at 25 mm and clipped to +-4;
- the local left-right antisymmetry ``|z(x + d) - z(x - d)|`` at ``d`` = 6, 12, 24 mm (low at the centre of a
  symmetric V), same normalisation, clipped to 0..6;
- the log ratio of the band's symmetry cost about x to its best (:func:`pcdiff.metrics.spine.slice_asymmetry`: the
  axis of the whole band's symmetry, which still exists at the top where the furrow fades), clipped to 0..8;
- two "no data" flags (no depth in the bin; no symmetry cost there: no profile in the band, or x too near its ends);
- the squared distance, in trunk widths, to the median symmetry axis and to the trunk's centre (a prior on place).

Each feature is repeated at :data:`HEIGHT_NODES` heights (top, middle, bottom of the range, linear "hat" weights in
between), so the fit can trust the furrow low on the back and the symmetry high up, where the drawn lines show that
the furrow fades. 3 x 13 = 39 weights. What the shipped phantom fit (``pretrained/learned-furrow-phantoms``) learnt,
top / middle / bottom, per unit of each feature: the path is drawn to a small bump (3-6 mm high-pass > 0, weights
-2.4 to -6.8: the spinous processes) inside a trough (12-25 mm high-pass < 0, +2.1 to +4.8), the trough weighing
least at the top (2.6 vs 4.8 and 4.0 at 12 mm); the band's symmetry cost counts at the top and bottom (0.8, 1.0) more
than in the middle (0.2); the antisymmetry features hardly at all (|w| <= 0.3).

Measured on the 20 PCdare subjects, 5 subject-wise folds (``python -m benchmarks.spine_baselines``, rows "learned
furrow", :mod:`benchmarks.learned_furrow_folds`; ~150 ms per back): fitted on 150 phantoms alone, ESL lateral RMS
4.4 +- 1.6 mm, level with the hand-made furrow path (4.4 +- 1.6 mm, whose settings were chosen on these subjects);
fitted on each fold's 16 training backs alone, 4.3 +- 1.7 mm; on the phantoms and those backs together, 4.2 +- 1.6 mm
(paired against the furrow path -0.25 mm, SE 0.34: not a reliable gain; against real alone -0.16 mm, SE 0.14). The features were designed while looking at these subjects; every weight and tracer setting is fitted without
the held-out one. Implementation details moved these figures by 0.2-0.3 mm, as much as the gain: before the symmetry
feature stopped reading the profile past the band's ends, this module read 4.5 mm for both fits, and a scratch
prototype with that same flaw read 4.34 and 4.15 mm (the difference between the two was not traced).

Units: mm throughout, pcdiff frame (x lateral, y up, z towards the scanner).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from einops import einsum, rearrange

from pcdiff.estimator.furrow import FurrowParams, SearchGrid, detrend_lateral, path_through, search_grid
from pcdiff.metrics.spine import slice_asymmetry, symmetry_slices

#: Tracer settings of the learned furrow: the high-pass scales are its features' scales; the search range is wider
#: than the hand-made tracer's default (the fit, not the range, keeps the path off the scapulae); smoothness and top
#: re-anchoring are the two settings a benchmark chooses on training backs.
LEARNED_PARAMS = FurrowParams(scales_mm=(3.0, 6.0, 12.0, 25.0, 50.0), half_width_frac=0.3, smoothness=4.0, top_anchor=0.5)
#: File a fitted cost is saved to (:meth:`LearnedFurrow.save`), and its format tag.
FILE_NAME, FORMAT = "learned_furrow.json", "pcdiff-learned-furrow-1"
#: Offsets (mm) of the local antisymmetry features.
ANTISYMMETRY_MM = (6.0, 12.0, 24.0)
#: Heights (fractions of the range, top = 0) at which every feature gets its own weight.
HEIGHT_NODES = (0.0, 0.5, 1.0)
#: The lateral step of the path between neighbouring bands is at most this many bins.
MAX_STEP_BINS = 2
#: Slices of the symmetry feature: half thickness and bin width (mm), and the reach (fraction of the slice's width)
#: of the offsets compared (:func:`pcdiff.metrics.spine.symmetry_midline`'s defaults).
SYMMETRY_SLICE_MM = (6.0, 4.0)
SYMMETRY_REACH = 0.3


def feature_names(params: FurrowParams = LEARNED_PARAMS) -> list[str]:
    """Names of the per-node features of :func:`band_features`, in order (``F`` of them)."""
    return ([f"highpass_{s:g}mm" for s in params.scales_mm] + [f"antisymmetry_{d:g}mm" for d in ANTISYMMETRY_MM]
            + ["symmetry_cost", "no_depth", "no_symmetry", "axis_distance", "centre_distance"])


FEATURE_NAMES = feature_names()


def symmetry_cost(points: np.ndarray, bands: np.ndarray, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Log ratio (H, X) of each band's left-right asymmetry about x = ``xs`` (X,) mm to its smallest over ``xs``, and
    (H, X) 1.0 where it cannot be read (cost 0 there): bands whose profile could not be read, and axes closer to the
    profile's ends than the offsets compared (the profile would be read past its end, where it is held flat and so
    looks symmetric; :func:`~pcdiff.metrics.spine.symmetry_midline` excludes them the same way). ``points`` (N, 3) mm,
    ``bands`` (H,) mm."""
    cost = np.zeros((len(bands), len(xs)))
    missing = np.ones((len(bands), len(xs)))
    half_thickness, bin_mm = SYMMETRY_SLICE_MM
    for h, px, pz, span in symmetry_slices(points, bands, half_thickness, bin_mm, SYMMETRY_REACH):
        valid = (xs >= px[0] + span) & (xs <= px[-1] - span)
        if valid.sum() < 2:
            continue
        asym = slice_asymmetry(px, pz, xs[valid], span, bin_mm)
        cost[h, valid] = np.log(np.maximum(asym, 1e-9) / max(float(asym.min()), 1e-9))
        missing[h, valid] = 0.0
    return np.clip(cost, 0.0, 8.0), missing


def height_basis(bands: np.ndarray) -> np.ndarray:
    """(H, B) linear "hat" weights of each band (heights (H,) mm, top -> bottom) on the :data:`HEIGHT_NODES`."""
    t = (bands[0] - bands) / max(bands[0] - bands[-1], 1e-9)
    nodes = np.asarray(HEIGHT_NODES)
    return np.clip(1.0 - np.abs(t[:, None] - nodes) / np.diff(nodes).max(), 0.0, 1.0)


def band_features(points: np.ndarray, heights: np.ndarray, params: FurrowParams = LEARNED_PARAMS) -> tuple[SearchGrid, np.ndarray]:
    """The search grid of a back and the features of each band x kept bin (see the module docstring).

    Args:
        points: (N, 3) scan, mm.
        heights: (H',) equally spaced heights (mm) between which the ESL is searched, either order.
        params: band geometry and high-pass scales (:data:`LEARNED_PARAMS`).

    Returns:
        The :class:`~pcdiff.estimator.furrow.SearchGrid` (H bands) and features (H, X, F * B) float64 over its kept
        bins (X = ``grid.keep.sum()``), F = ``len(feature_names(params))``, B = ``len(HEIGHT_NODES)``, node-minor.
    """
    points = np.asarray(points, dtype=np.float64)
    grid = search_grid(points, np.asarray(heights, dtype=np.float64), params)
    z, keep, bin_mm = grid.z, grid.keep, grid.bin_mm
    sd = np.nanstd(detrend_lateral(z, 25.0 / bin_mm)[:, keep], axis=1, keepdims=True)
    sd = np.where(np.isfinite(sd) & (sd > 1e-6), sd, 1.0)  # (H, 1)
    columns = [np.clip(np.nan_to_num(detrend_lateral(z, s / bin_mm, params.min_coverage) / sd), -4.0, 4.0)
               for s in params.scales_mm]
    for offset in ANTISYMMETRY_MM:
        k = max(1, int(round(offset / bin_mm)))
        anti = np.full_like(z, np.nan)
        anti[:, k:-k] = z[:, 2 * k:] - z[:, : -2 * k]
        columns.append(np.clip(np.nan_to_num(np.abs(anti) / sd), 0.0, 6.0))
    xs = grid.xs
    sym, no_sym = symmetry_cost(points, grid.bands, xs)
    place = np.ones_like(z)
    columns += [sym, np.isnan(z).astype(np.float64), no_sym,
                place * ((xs - grid.axis_mm) / grid.trunk_width_mm) ** 2,
                place * ((xs - grid.trunk_centre_mm) / grid.trunk_width_mm) ** 2]
    features = np.stack(columns, axis=-1)[:, keep]  # (H, X, F)
    by_node = einsum(features, height_basis(grid.bands), "h x f, h b -> h x f b")
    return grid, rearrange(by_node, "h x f b -> h x (f b)")


@dataclass(frozen=True)
class FurrowExample:
    """One training back for :func:`fit_furrow_cost`.

    Attributes:
        features: (H, X, F) features of its bands' kept bins (:func:`band_features`).
        target: (H,) int, the bin its true ESL passes through in each band.
        inside: (H,) bool, the bands within the true ESL's height range (only these count).
    """

    features: np.ndarray
    target: np.ndarray
    inside: np.ndarray


def furrow_example(points: np.ndarray, heights: np.ndarray, esl: np.ndarray, params: FurrowParams = LEARNED_PARAMS) -> FurrowExample:
    """:class:`FurrowExample` of a back: scan ``points`` (N, 3) mm, search ``heights`` (H',) mm, true ``esl`` (L, 3) mm."""
    return example_from(*band_features(points, heights, params), esl)


def example_from(grid: SearchGrid, features: np.ndarray, esl: np.ndarray) -> FurrowExample:
    """:class:`FurrowExample` of a back whose :func:`band_features` are already computed; ``esl`` (L, 3) mm its true ESL."""
    line = np.asarray(esl, dtype=np.float64)
    line = line[np.argsort(line[:, 1])]
    inside = (grid.bands >= line[0, 1]) & (grid.bands <= line[-1, 1])
    xs = grid.xs[grid.keep]
    target = np.clip(np.round((np.interp(grid.bands, line[:, 1], line[:, 0]) - xs[0]) / grid.bin_mm), 0, len(xs) - 1)
    return FurrowExample(features=features, target=target.astype(np.int64), inside=inside)


def fit_furrow_cost(examples: list[FurrowExample], weights: list[float] | np.ndarray | None = None, l2: float = 1e-3) -> np.ndarray:
    """Weights (F,) of the learned cost: the conditional logit of the true ESL's bin per band, by L-BFGS.

    Minimises ``sum_i w_i sum_bands [c(target) + logsumexp(-c)] / sum_i w_i n_i + l2 |theta|^2`` with
    ``c = standardised features @ theta``; convex in ``theta``. Written with torch's L-BFGS rather than a library
    logit because every band is its own choice set of a different size (a conditional logit, which neither
    scikit-learn nor statsmodels fits on ragged choice sets).

    Args:
        examples: training backs (:func:`furrow_example`), all with the same F.
        weights: (n,) >= 0 weight of each back (None: all 1); a back of weight 2 counts as two copies of it.
        l2: ridge on the standardised weights.

    Returns:
        (F,) float64 weights on the raw features (cost = features @ weights, up to a constant per band).

    Raises:
        ValueError: no example with a band inside its ESL, examples of different F, or bad weights.
    """
    w = np.ones(len(examples)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(examples),) or (w < 0).any():
        raise ValueError(f"fit_furrow_cost: expected {len(examples)} weights >= 0, got {w}")
    used = [(i, e) for i, e in enumerate(examples) if e.inside.any() and w[i] > 0]  # the standardisation too
    if not used:
        raise ValueError("fit_furrow_cost: no training back of positive weight has a band inside its ESL's height range")
    if len({e.features.shape[-1] for _, e in used}) != 1:
        raise ValueError("fit_furrow_cost: every example must have the same number of features")
    feats = [torch.as_tensor(e.features[e.inside], dtype=torch.float64) for _, e in used]  # (H_i, X_i, F)
    targets = [torch.as_tensor(e.target[e.inside]) for _, e in used]
    back_w = torch.as_tensor([w[i] for i, _ in used], dtype=torch.float64)
    back_w = back_w / (back_w * torch.as_tensor([len(t) for t in targets], dtype=torch.float64)).sum()
    flat = torch.cat([rearrange(f, "h x f -> (h x) f") for f in feats])
    mean, scale = flat.mean(0), flat.std(0).clamp_min(1e-6)
    theta = torch.zeros(flat.shape[1], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([theta], max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = l2 * (theta * theta).sum()
        for f, t, bw in zip(feats, targets, back_w):
            cost = ((f - mean) / scale) @ theta  # (H, X)
            loss = loss + bw * (cost.gather(1, t[:, None]).squeeze(1) + torch.logsumexp(-cost, dim=1)).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return (theta.detach() / scale).numpy()


@dataclass(frozen=True)
class LearnedFurrow:
    """A fitted furrow cost and the tracer settings it is traced with.

    Attributes:
        weights: (F * B,) weights of :func:`band_features` (:func:`fit_furrow_cost`).
        params: band geometry, feature scales, smoothness and top re-anchoring (:data:`LEARNED_PARAMS`).
    """

    weights: np.ndarray
    params: FurrowParams = LEARNED_PARAMS

    def with_tracer(self, smoothness: float, top_anchor: float) -> "LearnedFurrow":
        """The same cost traced with another smoothness and top re-anchoring weight."""
        return replace(self, params=replace(self.params, smoothness=smoothness, top_anchor=top_anchor))

    def path_x(self, points: np.ndarray, heights: np.ndarray) -> np.ndarray:
        """Lateral position x (H,) mm of the ESL at ``heights`` (H,) mm (equally spaced, either order) on the scan
        ``points`` (N, 3) mm."""
        points = np.asarray(points, dtype=np.float64)
        heights = np.asarray(heights, dtype=np.float64)
        grid, features = band_features(points, heights, self.params)
        return self.trace(grid, features, points, heights)

    def save(self, folder: str | Path, fitted_on: str = "", overwrite: bool = False) -> Path:
        """Write ``folder/learned_furrow.json`` (weights, tracer settings, feature names, ``fitted_on``) and return its
        path. Refuses (FileExistsError) to replace an existing file unless ``overwrite``."""
        path = Path(folder) / FILE_NAME
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {"format": FORMAT, "fitted_on": fitted_on, "params": asdict(self.params),
                  "features": [f"{name}@{node:g}" for name in feature_names(self.params) for node in HEIGHT_NODES],
                  "weights": [float(w) for w in self.weights]}
        path.write_text(json.dumps(record, indent=1) + "\n")
        return path

    @classmethod
    def load(cls, folder: str | Path) -> "LearnedFurrow":
        """The cost saved by :meth:`save` in ``folder`` (or the ``learned_furrow.json`` file itself).

        Raises:
            FileNotFoundError: no such file. ValueError: another format, or weights that do not match its features.
        """
        path = Path(folder)
        path = path / FILE_NAME if path.is_dir() else path
        if not path.is_file():
            raise FileNotFoundError(f"no learned furrow at {path} (write one with python -m pcdiff.estimator.fit_furrow)")
        record = json.loads(path.read_text())
        if record.get("format") != FORMAT:
            raise ValueError(f"{path}: format {record.get('format')!r}, expected {FORMAT!r}")
        params = FurrowParams(**{k: tuple(v) if isinstance(v, list) else v for k, v in record["params"].items()})
        weights = np.asarray(record["weights"], dtype=np.float64)
        if len(weights) != len(feature_names(params)) * len(HEIGHT_NODES):
            raise ValueError(f"{path}: {len(weights)} weights for {len(feature_names(params)) * len(HEIGHT_NODES)} features")
        return cls(weights=weights, params=params)

    def trace(self, grid: SearchGrid, features: np.ndarray, points: np.ndarray, heights: np.ndarray) -> np.ndarray:
        """:meth:`path_x` on features already computed (:func:`band_features` with ``self.params``' geometry)."""
        if features.shape[-1] != len(self.weights):
            raise ValueError(f"LearnedFurrow: {len(self.weights)} weights for {features.shape[-1]} features")
        return path_through(features @ self.weights, grid, points, heights, self.params, MAX_STEP_BINS)
