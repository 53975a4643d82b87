"""Check that a file is a pcdiff training checkpoint before Lightning loads it, so that a wrong or damaged file
gives one clear line ("not a pcdiff checkpoint, or corrupt") instead of torch's unpickler internals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def read_checkpoint(path: str | Path, kind: str = "PointDiffusion", required_hparam: str = "denoiser") -> dict[str, Any]:
    """Open ``path`` without pickle (``weights_only=True``, memory-mapped: tensors are not read) and check its keys.

    Args:
        path: a Lightning ``.ckpt`` written by ``python -m pcdiff.train`` (or the estimator's trainer).
        kind: the LightningModule expected, for the message.
        required_hparam: a hyperparameter every checkpoint of ``kind`` records (``denoiser`` for
            ``PointDiffusion``).

    Returns:
        the checkpoint dict (its tensors memory-mapped).

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ValueError: torch cannot read it (random bytes, truncated, not a zip checkpoint), or it lacks
            Lightning's ``state_dict`` / ``hyper_parameters`` or the ``required_hparam``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file" + (" (a folder)" if path.is_dir() else ""))
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # noqa: BLE001 (torch raises UnpicklingError, RuntimeError, EOFError, KeyError... on bad bytes)
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
        raise ValueError(f"{path}: not a pcdiff checkpoint, or corrupt (torch.load failed: {reason})") from exc
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise ValueError(f"{path}: not a pcdiff checkpoint (no Lightning 'state_dict'; expected a .ckpt from training)")
    hparams = ckpt.get("hyper_parameters") or {}
    if required_hparam not in hparams:
        raise ValueError(
            f"{path}: not a {kind} checkpoint (its hyperparameters lack {required_hparam!r}; "
            "a checkpoint of another model, e.g. the spinal-line estimator?)"
        )
    return ckpt
