"""Set-level generation metrics: MMD, COV and 1-NNA with Chamfer or EMD, as PointFlow/PVD/DPM/LION compute them.

Definitions (Achlioptas et al. 2018; Yang et al. 2019, PointFlow ``metrics/evaluation_metrics.py``), with a
generated set G and a reference set R and a distance d between clouds:

* ``MMD = mean_{r in R} min_{g in G} d(g, r)`` -- fidelity (lower is better), units of d
  (mm^2 for the squared Chamfer of scans in mm, mm for EMD).
* ``COV = |{argmin_{r in R} d(g, r) : g in G}| / |R|`` -- diversity, reported in % (higher is better).
* ``1-NNA``: leave-one-out 1-nearest-neighbour classification of G u R into "generated" vs "reference";
  accuracy in % (50% is ideal, 100% means the sets are told apart perfectly).

d is the squared-sum Chamfer of :mod:`pcdiff.metrics.chamfer` (``CD``) or the mean-matched-distance EMD
of :mod:`pcdiff.metrics.emd` (``EMD``). Normalisation happens before, in
:mod:`pcdiff.metrics.normalization`.

Searches: the three metrics need only nearest neighbours, so each distance has searches that skip most
of the full matrix. Each search has one name, accepted by ``cd_search`` / ``emd_search``:

* ``"full"`` -- the whole (S, S) matrix, ``S = |G| + |R|`` (CD and EMD).
* ``"bounded"`` -- the certified interval searches of :mod:`pcdiff.metrics.bounded_search` (needs numba).
  CD: exact, partial sums as lower bounds. EMD: cheap bounds, then auction bounds, the reported values
  exact or within ``emd_rel_tol`` with exact nearest neighbours.
* ``"lower_bounds"`` (EMD only) -- every Chamfer pair costs ~1 ms with KD-trees, but an exact EMD pair
  costs ~0.5 s, and the three metrics need about ``S^2 / 2`` pairs. Since
  ``EMD(x, y) >= max(mean_i min_j |x_i - y_j|, mean_j min_i |y_j - x_i|, |mean(x) - mean(y)|)`` (every
  matched distance is at least the nearest-neighbour distance; Jensen for the centroids), this search
  visits candidates in Chamfer order and skips those whose bound is not below the best EMD found
  (:class:`LowerBoundDistances`): the result equals the full matrix's (tested) with fewer EMDs -- how
  many fewer depends on how much the clouds differ compared with the sampling noise (two samples of one
  distribution prune little, distinct shapes prune a lot; the benchmark reports the count).
* ``"auto"`` (the default) -- ``"bounded"`` with numba installed, else ``"full"`` for CD and
  ``"lower_bounds"`` for EMD.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Literal

import torch
from tqdm.auto import tqdm

from pcdiff.ops._checks import check_points

from ._numba import is_numba_available
from .bounded_search import chamfer_search
from .bounded_search import emd_search as bounded_emd_search
from .chamfer import pairwise_nearest_means
from .emd import Method, earth_movers_distance, pairwise_emd


class DenseDistances:
    """Nearest-neighbour queries on a computed (S, S) distance matrix.

    ``evaluated``: how many distances were computed to fill it (default: all ``S (S - 1) / 2`` pairs; a
    bounded search passes its own count, its dropped pairs being ``inf``).
    """

    def __init__(self, matrix: torch.Tensor, evaluated: float | None = None) -> None:
        self.matrix = matrix
        self.evaluated = matrix.shape[0] * (matrix.shape[0] - 1) // 2 if evaluated is None else evaluated

    def nearest(self, query: int, candidates: torch.Tensor) -> tuple[float, int]:
        """Smallest distance from cloud ``query`` to the clouds ``candidates`` and which one attains it."""
        row = self.matrix[query, candidates]
        k = int(row.argmin())
        return float(row[k]), int(candidates[k])


class LowerBoundDistances:
    """Nearest-neighbour queries that evaluate an expensive symmetric distance lazily.

    Candidates are visited in increasing ``proxy`` order, skipping every candidate whose ``lower`` bound is
    not below the best distance found so far, which gives the exact nearest neighbour (up to ties). This
    is the prefetch-and-prune search of Kusner et al. 2015 (Word Mover's Distance) with their centroid
    and relaxed (nearest-neighbour) lower bounds.

    Args:
        lower: (S, S) lower bounds on the distance.
        pair_fn: ``(a_idx (P,), b_idx (P,)) -> (P,)`` distances of the listed pairs.
        batch: pairs evaluated per ``pair_fn`` call (1 for the exact solver, more for batched ones).
        proxy: (S, S) cheap estimate of the distance that sets the visiting order (default ``lower``);
            a good proxy finds the nearest neighbour first, so fewer candidates pass the bound test.
    """

    def __init__(
        self,
        lower: torch.Tensor,
        pair_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        batch: int = 1,
        proxy: torch.Tensor | None = None,
    ) -> None:
        self.lower = lower
        self.proxy = lower if proxy is None else proxy
        self.pair_fn = pair_fn
        self.batch = batch
        self.known = torch.full_like(lower, float("nan"))
        self.evaluated = 0

    def nearest(self, query: int, candidates: torch.Tensor) -> tuple[float, int]:
        known = self.known[query, candidates]
        have = ~known.isnan()
        best, best_idx = float("inf"), -1
        if bool(have.any()):
            k = int(torch.where(have, known, torch.inf).argmin())
            best, best_idx = float(known[k]), int(candidates[k])
        lower = torch.where(have, torch.inf, self.lower[query, candidates])
        order = self.proxy[query, candidates].argsort()
        order = order[lower[order] < best]
        while len(order):
            take = order[: self.batch]
            cols = candidates[take]
            values = self.pair_fn(torch.full_like(cols, query), cols).double().cpu()
            self.known[query, cols] = values
            self.known[cols, query] = values
            self.evaluated += len(cols)
            k = int(values.argmin())
            if float(values[k]) < best:
                best, best_idx = float(values[k]), int(cols[k])
            order = order[self.batch :]
            order = order[lower[order] < best]
        return best, best_idx


Distances = DenseDistances | LowerBoundDistances


def mmd_cov(distances: Distances, num_generated: int, num_reference: int, progress: bool = False) -> dict[str, float]:
    """MMD and COV (in %) over the union indexing ``[generated..., reference...]``."""
    gen = torch.arange(num_generated)
    ref = torch.arange(num_generated, num_generated + num_reference)
    mmd = [distances.nearest(int(r), gen)[0] for r in tqdm(ref, desc="MMD", disable=not progress)]
    matched = {distances.nearest(int(g), ref)[1] for g in tqdm(gen, desc="COV", disable=not progress)}
    return {"MMD": sum(mmd) / len(mmd), "COV": 100.0 * len(matched) / num_reference}


def one_nn_accuracy(
    distances: Distances, num_generated: int, num_reference: int, progress: bool = False
) -> dict[str, float]:
    """Leave-one-out 1-NN accuracy (in %) of telling generated from reference clouds.

    Returns ``1-NNA`` (all clouds) plus ``1-NNA-gen`` and ``1-NNA-ref`` (PointFlow's ``acc_f``/``acc_t``).
    """
    total = num_generated + num_reference
    if num_generated < 1 or num_reference < 1 or total < 3:
        raise ValueError(f"1-NNA needs both sets non-empty and 3+ clouds, got {num_generated} and {num_reference}")
    is_gen = torch.arange(total) < num_generated
    correct = torch.zeros(total, dtype=torch.bool)
    everyone = torch.arange(total)
    for i in tqdm(range(total), desc="1-NNA", disable=not progress):
        _, j = distances.nearest(i, everyone[everyone != i])
        correct[i] = is_gen[j] == is_gen[i]
    return {
        "1-NNA": 100.0 * correct.double().mean().item(),
        "1-NNA-gen": 100.0 * correct[is_gen].double().mean().item(),
        "1-NNA-ref": 100.0 * correct[~is_gen].double().mean().item(),
    }


CDSearch = Literal["auto", "bounded", "full"]
EMDSearch = Literal["auto", "bounded", "lower_bounds", "full"]


class _Sets:
    """The clouds of one :func:`generation_metrics` call, ``[generated..., reference...]``, with the
    directed nearest-neighbour means computed at most once (the full CD and the EMD lower bounds share them).
    """

    def __init__(self, generated: torch.Tensor, reference: torch.Tensor, progress: bool) -> None:
        self.generated, self.reference, self.progress = generated, reference, progress
        self.num_generated = generated.shape[0]

    @cached_property
    def union(self) -> torch.Tensor:
        """(G + R, N, 3); only for equal point counts."""
        return torch.cat([self.generated, self.reference])

    @cached_property
    def nearest_means(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(squared, plain)`` (S, S) float64 directed mean nearest-neighbour distances (units^2, units)."""
        if self.generated.shape[1] == self.reference.shape[1]:
            return pairwise_nearest_means(self.union, progress=self.progress)
        # different point counts: assemble the union matrices block by block
        sets = (self.generated, self.reference)
        blocks = [[pairwise_nearest_means(a, b, progress=self.progress) for b in sets] for a in sets]
        sq = torch.cat([torch.cat([blk[0] for blk in row], 1) for row in blocks], 0)
        plain = torch.cat([torch.cat([blk[1] for blk in row], 1) for row in blocks], 0)
        return sq, plain


def _cd_full(sets: _Sets, metrics: Sequence[str]) -> Distances:
    sq, _ = sets.nearest_means
    return DenseDistances(sq + sq.T)


def _cd_bounded(sets: _Sets, metrics: Sequence[str]) -> Distances:
    return DenseDistances(chamfer_search([*sets.generated, *sets.reference], sets.num_generated, metrics).matrix)


def _emd_full(sets: _Sets, metrics: Sequence[str], method: Method, rel_tol: float) -> Distances:
    return DenseDistances(pairwise_emd(sets.union, method=method, rel_tol=rel_tol, progress=sets.progress))


def _emd_bounded(sets: _Sets, metrics: Sequence[str], method: Method, rel_tol: float) -> Distances:
    found = bounded_emd_search(sets.union, sets.num_generated, metrics, exact=method == "exact", rel_tol=rel_tol)
    return DenseDistances(found.matrix, evaluated=found.work)


def _emd_lower_bounds(sets: _Sets, metrics: Sequence[str], method: Method, rel_tol: float) -> Distances:
    union = sets.union
    _, plain = sets.nearest_means
    centroids = union.double().mean(1).cpu()
    lower = torch.maximum(torch.maximum(plain, plain.T), torch.cdist(centroids, centroids))

    def pair_fn(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return earth_movers_distance(union[a], union[b], method=method, rel_tol=rel_tol)

    return LowerBoundDistances(lower, pair_fn, batch=1 if method == "exact" else 8, proxy=plain + plain.T)


# One builder a search name; "auto" resolves to one of them in _pick_search.
CD_SEARCHES: dict[str, Callable[[_Sets, Sequence[str]], Distances]] = {"bounded": _cd_bounded, "full": _cd_full}
EMD_SEARCHES: dict[str, Callable[[_Sets, Sequence[str], Method, float], Distances]] = {
    "bounded": _emd_bounded,
    "lower_bounds": _emd_lower_bounds,
    "full": _emd_full,
}


def _pick_search(
    option: str, name: str, builders: dict[str, Callable[..., Distances]], fallback: str
) -> Callable[..., Distances]:
    """The builder of search ``name`` (``"auto"``: bounded with numba, else ``fallback``); loud on unknown names."""
    if name == "auto":
        name = "bounded" if is_numba_available() else fallback
    if name not in builders:
        hint = " ('pruned' is now 'bounded' or 'lower_bounds')" if name == "pruned" else ""
        raise ValueError(f"{option} must be one of {['auto', *builders]}, got {name!r}{hint}")
    if name == "bounded" and not is_numba_available():
        raise ImportError(f"generation_metrics: {option}='bounded' needs numba (pip install numba); use '{fallback}'")
    return builders[name]


def generation_metrics(
    generated: torch.Tensor,
    reference: torch.Tensor,
    *,
    distances: Sequence[Literal["cd", "emd"]] = ("cd", "emd"),
    metrics: Sequence[Literal["mmd", "cov", "1nna"]] = ("mmd", "cov", "1nna"),
    emd_method: Method = "exact",
    emd_search: EMDSearch = "auto",
    emd_rel_tol: float = 1e-2,
    progress: bool = False,
    cd_search: CDSearch = "auto",
) -> dict[str, float]:
    """MMD, COV and 1-NNA of ``generated`` (G, N, 3) against ``reference`` (R, N, 3) with CD and/or EMD.

    Args:
        generated, reference: clouds in the same, already normalised, frame. CD allows different point
            counts between the sets; EMD needs equal N.
        distances: which cloud distances to use.
        metrics: which of MMD / COV / 1-NNA to compute.
        emd_method: ``"exact"`` (assignment solver) or ``"auction"`` (certified within ``emd_rel_tol``).
        emd_search: ``"bounded"`` (:func:`pcdiff.metrics.bounded_search.emd_search`, needs numba; nearest
            neighbours exact, MMD exact or within ``emd_rel_tol``), ``"lower_bounds"`` (the Chamfer/centroid
            lower-bound search with one solve a visited pair, :class:`LowerBoundDistances`), ``"full"``
            matrix, or ``"auto"``: bounded when numba is installed, else lower_bounds.
        progress: tqdm bars.
        cd_search: ``"bounded"`` (:func:`pcdiff.metrics.bounded_search.chamfer_search`, exact, needs numba
            and 3-D points), ``"full"`` (the whole matrix) or ``"auto"``: bounded when numba is installed,
            else full.

    Returns:
        ``{"MMD-CD": ..., "COV-CD": ..., "1-NNA-CD": ..., "1-NNA-CD-gen": ..., ..., "EMD-pairs": n}``;
        MMD-CD in squared units, MMD-EMD in units, COV and 1-NNA in %; ``EMD-pairs`` counts the
        EMD evaluations (the full matrix would need ``S (S - 1) / 2`` with ``S = G + R``).
    """
    check_points("generated", generated, dim=3)
    check_points("reference", reference, dim=3)
    unknown = set(distances) - {"cd", "emd"} | set(metrics) - {"mmd", "cov", "1nna"}
    if unknown:
        raise ValueError(f"generation_metrics: unknown distances/metrics {sorted(unknown)}")
    if emd_method not in ("exact", "auction"):
        raise ValueError(f"EMD method must be 'auction' or 'exact', got {emd_method!r}")
    g, r = generated.shape[0], reference.shape[0]
    sets = _Sets(generated, reference, progress)
    results: dict[str, float] = {}
    if "cd" in distances:
        cd_builder = _pick_search("cd_search", cd_search, CD_SEARCHES, fallback="full")
        results.update(_set_metrics(cd_builder(sets, metrics), g, r, metrics, "CD", progress))
    if "emd" in distances:
        emd_builder = _pick_search("emd_search", emd_search, EMD_SEARCHES, fallback="lower_bounds")
        if generated.shape[1] != reference.shape[1]:
            raise ValueError(
                f"EMD needs equal point counts, got generated N={generated.shape[1]}, reference N={reference.shape[1]}"
            )
        oracle = emd_builder(sets, metrics, emd_method, emd_rel_tol)
        results.update(_set_metrics(oracle, g, r, metrics, "EMD", progress))
        results["EMD-pairs"] = float(oracle.evaluated)
    return results


def _set_metrics(
    oracle: Distances, g: int, r: int, metrics: Sequence[str], tag: str, progress: bool
) -> dict[str, float]:
    out: dict[str, float] = {}
    if "mmd" in metrics or "cov" in metrics:
        mc = mmd_cov(oracle, g, r, progress)
        out.update({f"{k}-{tag}": v for k, v in mc.items() if k.lower() in metrics})
    if "1nna" in metrics:
        out.update({k.replace("1-NNA", f"1-NNA-{tag}"): v for k, v in one_nn_accuracy(oracle, g, r, progress).items()})
    return out
