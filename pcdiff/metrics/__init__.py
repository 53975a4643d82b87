"""Geometric-fidelity metrics for point clouds and spine-conditioning metrics for generated back scans.

One idea a module: :mod:`.chamfer`, :mod:`.emd`, :mod:`.fscore`, :mod:`.generation` (MMD/COV/1-NNA),
:mod:`.jsd`, :mod:`.normalization`, :mod:`.spine`; :mod:`.registry` names them for ``python -m pcdiff.eval``.
"""

from .chamfer import chamfer_distance, nearest_distances, pairwise_chamfer, pairwise_nearest_means
from .emd import EMDResult, earth_movers_distance, emd_auction, emd_exact, pairwise_emd
from .fscore import fscore
from .generation import generation_metrics, mmd_cov, one_nn_accuracy
from .jsd import jsd_between_sets
from .normalization import normalize_sets

__all__ = [
    "EMDResult",
    "chamfer_distance",
    "earth_movers_distance",
    "emd_auction",
    "emd_exact",
    "fscore",
    "generation_metrics",
    "jsd_between_sets",
    "mmd_cov",
    "nearest_distances",
    "normalize_sets",
    "one_nn_accuracy",
    "pairwise_chamfer",
    "pairwise_emd",
    "pairwise_nearest_means",
]
