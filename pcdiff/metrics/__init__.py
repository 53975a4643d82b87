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
from .spine import esl_surface_distance, lateral_deviation_to_surface, spine_conditioning_metrics

__all__ = [
    "EMDResult",
    "chamfer_distance",
    "earth_movers_distance",
    "emd_auction",
    "emd_exact",
    "esl_surface_distance",
    "fscore",
    "generation_metrics",
    "jsd_between_sets",
    "lateral_deviation_to_surface",
    "mmd_cov",
    "nearest_distances",
    "normalize_sets",
    "one_nn_accuracy",
    "pairwise_chamfer",
    "pairwise_emd",
    "pairwise_nearest_means",
    "spine_conditioning_metrics",
]
