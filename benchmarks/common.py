"""Helpers shared by ``benchmarks/fidelity.py`` and ``benchmarks/real_conditioning.py``.

Everything here goes through pcdiff's public API: training is ``PointDiffusion`` + ``BackScanDataModule``
in a Lightning ``Trainer``, sampling is ``PointDiffusion.to_pipeline(...).sample_normalized``, distances
are :mod:`pcdiff.metrics`. What is benchmark-specific: the retrieval baseline (a nearest-neighbour
lookup on spine keypoints), timing, and writing results (JSON + Markdown) with the hardware and command.

Frames: clouds are handled in the data module's normalised spine frame, ``x_norm = (x_mm - center) / scale``
(``center``, ``scale`` of the conditioning line). A cloud "in mm" for a requested spine is
``x_norm * scale + center`` with *that spine's* frame, so a retrieved or re-drawn scan is placed where the
generator would have put its back.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shlex
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pcdiff.geometry.frames import to_mm  # noqa: F401 (the benchmarks' name for it: fidelity, real_conditioning...)

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "benchmarks" / "results"
DEFAULT_PCDARE = ROOT.parent / "shared" / "data" / "pcdare"

CONFIGS_DIR = ROOT / "configs"

#: CPU-sized denoisers for quick modes (0.3-1 M parameters, 0.2-0.3 s per training step of 16 x 512 points on
#: one idle core; the quickstart PVCNN, 1.8 M, takes ~0.85 s, too slow for three models and a sampler grid
#: in ~20 min). Full modes use configs/<denoiser>.yaml.
SMALL_DENOISER_KWARGS: dict[str, dict[str, Any]] = {
    "pvcnn": dict(width=16, channel_mults=(1, 2), voxel_resolutions=(16, 8), num_heads=4, cond_dim=64,
                  spine_layers=1),
    "pointnet2": dict(width=32, channel_mults=(2, 4, 8), num_centres=(128, 32, 8), radii=(0.1, 0.2, 0.4),
                      num_neighbours=(16, 16, 8), num_heads=4, cond_dim=64, spine_layers=1),
    "transformer": dict(width=128, depth=3, num_heads=4, num_patches=64, patch_size=16, point_width=32,
                        mlp_ratio=2, cond_dim=64, spine_layers=1),
}
#: model settings a benchmark sets itself (no validation sampling or image logging inside training)
BENCHMARK_MODEL_OVERRIDES = {"val_num_samples": 0, "log_images": False}


def read_train_config(path: Path) -> dict[str, dict[str, Any]]:
    """The ``model``, ``data`` and ``trainer`` sections of a ``python -m pcdiff.train`` YAML config."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: training config not found (expected configs/<name>.yaml)")
    doc = yaml.safe_load(path.read_text()) or {}
    if not isinstance(doc.get("model"), dict):
        raise ValueError(f"{path}: no 'model:' section")
    return {k: dict(doc.get(k) or {}) for k in ("model", "data", "trainer")}


def model_settings(denoiser: str, source: str) -> tuple[dict[str, Any], float | None, Path]:
    """PointDiffusion keyword arguments and gradient clipping for ``denoiser``.

    Args:
        denoiser: ``"pvcnn"``, ``"pointnet2"`` or ``"transformer"``.
        source: ``"quickstart"``: every denoiser takes configs/quickstart.yaml's model settings (schedule,
            optimiser, EMA, guidance dropout, gradient clipping) with its :data:`SMALL_DENOISER_KWARGS`;
            ``"configs"``: configs/<denoiser>.yaml as it is.

    Returns:
        (model kwargs without the data-linked keys, ``trainer.gradient_clip_val`` or None, the config read).
    """
    if source == "quickstart":
        path = CONFIGS_DIR / "quickstart.yaml"
        cfg = read_train_config(path)
        model = dict(cfg["model"])
        model["denoiser"], model["denoiser_kwargs"] = denoiser, SMALL_DENOISER_KWARGS[denoiser]
    elif source == "configs":
        path = CONFIGS_DIR / f"{denoiser}.yaml"
        cfg = read_train_config(path)
        model = dict(cfg["model"])
        if model.get("denoiser") != denoiser:
            raise ValueError(f"{path}: model.denoiser is {model.get('denoiser')!r}, expected {denoiser!r}")
    else:
        raise ValueError(f"model settings source must be 'quickstart' or 'configs', got {source!r}")
    model.update(BENCHMARK_MODEL_OVERRIDES)
    for key in ("num_points", "num_keypoints", "line", "normalize", "fixed_scale"):  # linked from the data module
        model.pop(key, None)
    return model, cfg["trainer"].get("gradient_clip_val"), path


# ------------------------------------------------------------------------------------------ bookkeeping
def hardware_info() -> dict[str, Any]:
    """Platform, CPU count, torch version, threads and GPU (when present) of this run."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        info["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:  # not on every platform
        pass
    return info


def machine_was_busy(one_minute_loads: Sequence[float], cpu_count: int) -> bool:
    """Whether other jobs shared the CPU during a run, from the 1-minute load averages recorded at its start
    and end: this run itself accounts for up to one unit per core, so more than ``cpu_count + 0.5`` means others."""
    return max(one_minute_loads, default=0.0) > cpu_count + 0.5


def command_line() -> str:
    """The command that started this process, as it could be pasted into a shell."""
    return " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv])


@contextmanager
def timer() -> Iterator[dict[str, float]]:
    """``with timer() as t: ...`` then ``t["s"]`` holds the wall time in seconds."""
    out = {"s": float("nan")}
    start = time.perf_counter()
    try:
        yield out
    finally:
        out["s"] = time.perf_counter() - start


def write_results(stem: str, payload: dict[str, Any], markdown: str, out_dir: Path = RESULTS_DIR) -> tuple[Path, Path]:
    """Write ``out_dir/stem.json`` and ``out_dir/stem.md``; returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    js, md = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    js.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n")
    md.write_text(markdown if markdown.endswith("\n") else markdown + "\n")
    return js, md


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, str]]) -> str:
    """A Markdown table: ``columns`` are (key, header, format spec); missing or None values print as '-'."""
    head = "| " + " | ".join(h for _, h, _ in columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    lines = [head, sep]
    for row in rows:
        cells = []
        for key, _, spec in columns:
            value = row.get(key)
            if value is None or (isinstance(value, float) and not np.isfinite(value)):
                cells.append("-")
            else:
                cells.append(format(value, spec) if spec else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def quiet_lightning() -> None:
    """Silence Lightning's per-run banners and the warnings a short CPU benchmark run always triggers."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*GPU available but not used.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")


# ------------------------------------------------------------------------------------------ training
def train_point_diffusion(
    datamodule: Any,
    *,
    max_steps: int,
    seed: int = 0,
    init_checkpoint: Path | None = None,
    save_checkpoint: Path | None = None,
    accelerator: str = "auto",
    precision: str = "32-true",
    gradient_clip_val: float | None = None,
    **model_kwargs: Any,
) -> tuple[Any, float]:
    """Train (or fine-tune) a ``PointDiffusion`` on ``datamodule`` for ``max_steps`` optimiser steps.

    The model's ``num_points``, ``num_keypoints``, ``line`` and ``normalize`` are taken from the data
    module (as ``pcdiff.train`` links them). With ``init_checkpoint`` the weights (and EMA) come from that
    Lightning checkpoint, its saved settings overridden by ``model_kwargs`` and the data module's.
    ``save_checkpoint``: write the trained model's Lightning checkpoint there (for ``--init`` elsewhere).
    Validation is off: the benchmark evaluates on its own held-out subjects afterwards.

    Returns:
        (the trained module in eval mode, on CPU; training wall time in seconds).
    """
    import lightning as L

    from pcdiff.diffusion.module import PointDiffusion

    hp = datamodule.hparams
    linked = {k: hp[k] for k in ("num_points", "num_keypoints", "line", "normalize", "fixed_scale")}
    L.seed_everything(seed, workers=True, verbose=False)
    if init_checkpoint is not None:
        module = PointDiffusion.load_from_checkpoint(str(init_checkpoint), map_location="cpu", **linked, **model_kwargs)
    else:
        module = PointDiffusion(**linked, **model_kwargs)
    trainer = L.Trainer(
        max_steps=max_steps,
        accelerator=accelerator,
        devices=1,
        precision=precision,
        gradient_clip_val=gradient_clip_val,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        deterministic=False,
    )
    threads = torch.get_num_threads()
    with timer() as t:
        trainer.fit(module, datamodule=datamodule)
    torch.set_num_threads(threads)  # Lightning's CPU setup may change it; keep the caller's (e.g. OMP_NUM_THREADS=1)
    if trainer.global_step < max_steps:
        raise RuntimeError(f"training stopped after {trainer.global_step} of {max_steps} steps")
    if save_checkpoint is not None:
        Path(save_checkpoint).parent.mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(save_checkpoint)
    return module.cpu().eval(), t["s"]


# ------------------------------------------------------------------------------------------ sampling
@torch.no_grad()
def sample_backs(
    module: Any,
    spines: torch.Tensor,
    *,
    num_points: int,
    sampler: str,
    num_inference_steps: int,
    sampler_kwargs: dict[str, Any] | None = None,
    guidance_scale: float = 1.0,
    seed: int = 0,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, float]:
    """Generate one back per spine with the module's (EMA) denoiser and the named Diffusers sampler.

    Args:
        module: a trained ``PointDiffusion``.
        spines: (Q, K, 3) spine keypoints in the normalised frame.
        num_points: N generated points per back.
        sampler: sampler alias (``"ddpm"``, ``"ddim"``, ``"dpm++"``...; see ``pcdiff.diffusion.schedulers``).
        num_inference_steps: sampler steps.
        sampler_kwargs: the sampler's settings (e.g. ``{"use_karras_sigmas": True}``).
        guidance_scale: classifier-free guidance weight (1 = conditional only, no unconditional pass).
        seed: back ``q`` draws its noise from ``torch.Generator().manual_seed(seed + q)`` (batch-size independent).
        batch_size: backs per denoiser call.
        device: where to sample.

    Returns:
        (generated backs (Q, N, 3) normalised, float32 on CPU; wall time in seconds for all Q backs).
    """
    module = module.to(device)
    pipe = module.to_pipeline(sampler=sampler, sampler_kwargs=sampler_kwargs or {})
    pipe.set_progress_bar_config(disable=True)
    pipe.sample_normalized(spines[:1].to(device), num_points=num_points, num_inference_steps=2)  # warm-up, untimed
    out = []
    with timer() as t:
        for start in range(0, spines.shape[0], batch_size):
            chunk = spines[start : start + batch_size].to(device)
            gens = [torch.Generator(device).manual_seed(seed + start + i) for i in range(chunk.shape[0])]
            out.append(
                pipe.sample_normalized(
                    chunk, num_points=num_points, num_inference_steps=num_inference_steps,
                    guidance_scale=guidance_scale, generator=gens,
                ).float().cpu()
            )
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
    backs = torch.cat(out)
    if not torch.isfinite(backs).all():
        raise FloatingPointError(f"{sampler} x {num_inference_steps} steps (w={guidance_scale}): generated NaN/inf points")
    return backs, t["s"]


# ------------------------------------------------------------------------------------------ retrieval
def nearest_spines(query: torch.Tensor, bank: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of the bank spine nearest each query spine, both in the normalised spine frame.

    Distance = root-mean-square over the K keypoints of the Euclidean keypoint distance (keypoints are
    equal-arc-length samples top -> bottom, so keypoint k of one line corresponds to keypoint k of another).

    Args:
        query: (Q, K, 3) normalised keypoints.
        bank: (T, K, 3) normalised keypoints.

    Returns:
        idx (Q,) int64 into ``bank`` and the RMS distances (Q,) in normalised units.
    """
    if query.ndim != 3 or bank.ndim != 3 or query.shape[1:] != bank.shape[1:]:
        raise ValueError(f"nearest_spines: expected (Q, K, 3) and (T, K, 3) keypoints, got {tuple(query.shape)} and {tuple(bank.shape)}")
    d = (query[:, None] - bank[None]).square().sum(-1).mean(-1).sqrt()  # (Q, T)
    dist, idx = d.min(1)
    return idx, dist


# ------------------------------------------------------------------------------------------ metrics
def paired_distances(
    gen: torch.Tensor, ref: torch.Tensor, scale: torch.Tensor, *, emd: bool = True, emd_method: str = "exact"
) -> dict[str, np.ndarray]:
    """Per-pair distances between each generated back and the true back of the same spine.

    Args:
        gen, ref: (B, N, 3) clouds in the normalised frame (same N when ``emd``).
        scale: (B,) mm per normalised unit of each pair's requested spine.
        emd: also compute the EMD.
        emd_method: ``"exact"`` (scipy assignment) or ``"auction"`` (certified within 1%), see :mod:`pcdiff.metrics.emd`.

    Returns:
        ``chamfer_mm`` (B,): (mean nearest distance gen->ref + ref->gen) / 2, in mm, not squared;
        ``chamfer_sq`` (B,): the squared, summed convention of the set metrics, normalised units^2;
        ``emd_mm`` (B,): mean matched distance of the optimal bijection, mm.
    """
    from pcdiff.metrics.chamfer import chamfer_distance
    from pcdiff.metrics.emd import earth_movers_distance

    s = scale.double().cpu().numpy()
    out = {
        "chamfer_mm": chamfer_distance(gen, ref, squared=False, reduction="mean").double().cpu().numpy() * s,
        "chamfer_sq": chamfer_distance(gen, ref).double().cpu().numpy(),
    }
    if emd:
        out["emd_mm"] = earth_movers_distance(gen, ref, method=emd_method).detach().double().cpu().numpy() * s
    return out


def spine_scores(backs_mm: torch.Tensor, lines_mm: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """Spine-conditioning metrics of each back against its requested ESL (:mod:`pcdiff.metrics.spine`).

    The surface midline is the symmetry axis of horizontal slices (``symmetry_midline``), with slices
    thick enough to hold ~50 points: half-thickness ``6 mm * 2048 / N`` (6 mm at 2048 points, 24 mm at 512),
    at most 24 mm (thicker slabs would blur the midline; sparser backs then come out unmeasurable).

    Args:
        backs_mm: (B, N, 3) backs in mm.
        lines_mm: B requested ESLs, each (L, 3) mm, in the same frame as its back.

    Returns:
        ``lateral_mm`` (B,): mean lateral deviation between the ESL and the back's own midline (mm);
        ``esl_to_surface_mm`` (B,): mean distance from the ESL to the nearest back point (mm).
        A back on which the metric cannot be measured (no slice with enough points, no overlap in
        height with its line: a failed sample) gets NaN; callers count those and say so.
    """
    from functools import partial

    from pcdiff.metrics.spine import spine_conditioning_metrics, symmetry_midline

    if len(lines_mm) != backs_mm.shape[0]:
        raise ValueError(f"spine_scores: {backs_mm.shape[0]} backs but {len(lines_mm)} lines")
    half = min(24.0, 6.0 * max(1.0, 2048 / backs_mm.shape[1]))
    estimator = partial(symmetry_midline, half_thickness=half)
    lateral, surface = np.full(len(lines_mm), np.nan), np.full(len(lines_mm), np.nan)
    for i, (back, line) in enumerate(zip(backs_mm.double().numpy(), lines_mm)):
        try:
            m = spine_conditioning_metrics(back, line, estimator=estimator)
        except ValueError as exc:  # a degenerate sample; counted by the caller, never averaged in as a number
            logging.getLogger(__name__).warning("spine metrics failed on back %d: %s", i, exc)
            continue
        lateral[i], surface[i] = m["lateral_dev_mean"], m["esl_surface_mean"]
    return {"lateral_mm": lateral, "esl_to_surface_mm": surface}


def summarize(values: np.ndarray) -> dict[str, float]:
    """Mean, standard deviation and median of a 1-D array (NaN-free; raises otherwise)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0 or not np.isfinite(values).all():
        raise ValueError(f"summarize: expected a non-empty finite array, got {values!r}")
    return {"mean": float(values.mean()), "std": float(values.std()), "median": float(np.median(values))}
