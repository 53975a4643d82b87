"""Spine-conditioned point-cloud denoisers, all behind one interface (:class:`SpineDenoiser`).

``build_denoiser(name, **config)`` builds one by name; ``DENOISERS`` maps names to classes, and each
class's ``from_pretrained`` reloads a ``save_pretrained`` folder offline.
"""

from __future__ import annotations

from typing import Any

from pcdiff.models.base import DenoiserOutput, SpineDenoiser
from pcdiff.models.pointnet2 import PointNet2Denoiser
from pcdiff.models.pvcnn import PVCNNDenoiser
from pcdiff.models.transformer import PointTransformerDenoiser

DENOISERS: dict[str, type[SpineDenoiser]] = {
    "pvcnn": PVCNNDenoiser,
    "pointnet2": PointNet2Denoiser,
    "transformer": PointTransformerDenoiser,
}


def build_denoiser(name: str, **config: Any) -> SpineDenoiser:
    """Build a denoiser by name with its keyword configuration.

    Args:
        name: one of ``DENOISERS`` (``"pvcnn"``, ``"pointnet2"``, ``"transformer"``).
        **config: the class's ``__init__`` arguments (see each class's docstring).

    Raises:
        ValueError: for an unknown name, listing the valid ones.
    """
    if name not in DENOISERS:
        raise ValueError(f"build_denoiser: unknown denoiser {name!r}; valid names are {sorted(DENOISERS)}")
    return DENOISERS[name](**config)


__all__ = [
    "DENOISERS",
    "DenoiserOutput",
    "PVCNNDenoiser",
    "PointNet2Denoiser",
    "PointTransformerDenoiser",
    "SpineDenoiser",
    "build_denoiser",
]
