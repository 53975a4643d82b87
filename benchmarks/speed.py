"""Speed and memory of training and sampling, per denoiser, sampler, number of points and batch size.

    OMP_NUM_THREADS=2 python -m benchmarks.speed --quick     # this CPU: small denoisers, fewer sizes
    python -m benchmarks.speed                                # a GPU: the configs/*.yaml denoisers, fp32 and bf16

Sections (all with the real training step: ``PointDiffusion`` in a Lightning ``Trainer``, EMA and AdamW
included; sampling through ``SpineToBackPipeline``):
  * train     training throughput (scans/s) and peak memory per denoiser at 2048 points;
  * sampling  wall time per generated scan for each sampler and step count (default denoiser);
  * points    training step time, memory and time per denoiser evaluation at 1k/2k/4k/8k points;
  * batch     the same against batch size at 2048 points.
Peak memory is the process's peak RSS on CPU (each measurement runs in a fresh forked process) and
``torch.cuda.max_memory_allocated`` on a GPU. On a GPU each training row is run in fp32 and bf16-mixed
and reports achieved TFLOP/s (FLOPs of one forward + backward counted by ``torch.utils.flop_counter``)
and its fraction of the card's dense peak for that precision, where the card is in ``PEAK_TFLOPS``.
Writes benchmarks/results/speed[_quick].json and .md.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from benchmarks.reporting import ROOT, command_line, hardware_info, machine_was_busy, markdown_table, write_results
from benchmarks.training import quiet_lightning
from pcdiff.diffusion.testing import SMALL_DENOISERS

DENOISERS = ("pvcnn", "pointnet2", "transformer")
#: Dense peak TFLOP/s (no sparsity) by GPU name fragment and precision, from the vendors' data sheets.
PEAK_TFLOPS = {"H100": {"bf16": 989.4, "fp32": 66.9}, "H200": {"bf16": 989.4, "fp32": 66.9},
               "A100": {"bf16": 312.0, "fp32": 19.5}}
NUM_KEYPOINTS = 32


def denoiser_kwargs(name: str, quick: bool) -> dict[str, Any]:
    """Small CPU settings (shared with the other benchmarks) or the GPU settings of configs/<name>.yaml."""
    if quick:
        return dict(SMALL_DENOISERS[name])
    return yaml.safe_load((ROOT / "configs" / f"{name}.yaml").read_text())["model"]["denoiser_kwargs"]


def synthetic_batch(batch: int, points: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A batch shaped like the data module's: sheet-like backs (B, N, 3) and a vertical spine (B, K, 3), normalised."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(batch, points, 2, generator=g) * torch.tensor([0.8, 1.2]) - torch.tensor([0.4, 0.6])
    z = 0.05 * torch.sin(3 * xy[..., :1]) + 0.01 * torch.randn(batch, points, 1, generator=g)
    spine_y = torch.linspace(0.5, -0.5, NUM_KEYPOINTS)
    spine = torch.stack([0.02 * torch.randn(batch, NUM_KEYPOINTS, generator=g), spine_y.expand(batch, -1),
                         torch.zeros(batch, NUM_KEYPOINTS)], -1)
    return {"points": torch.cat([xy, z], -1), "spine": spine, "center": torch.zeros(batch, 3),
            "scale": torch.full((batch,), 450.0)}


class _Repeat(torch.utils.data.Dataset):
    """The same synthetic batch, ``n`` times (the loader collates nothing: batch_size=None)."""

    def __init__(self, batch: dict[str, torch.Tensor], n: int) -> None:
        self.batch, self.n = batch, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.batch


def _module(name: str, quick: bool, points: int):  # noqa: ANN202
    from pcdiff.diffusion.module import PointDiffusion

    return PointDiffusion(denoiser=name, denoiser_kwargs=denoiser_kwargs(name, quick), num_points=points,
                          num_keypoints=NUM_KEYPOINTS, val_num_samples=0, log_images=False, warmup_steps=1)


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def measure_training(name: str, quick: bool, batch: int, points: int, steps: int, precision: str = "32-true") -> dict[str, Any]:
    """Median time of ``steps`` training steps (after 2 warm-up steps) in a Lightning Trainer, and peak memory."""
    import lightning as L
    from lightning.pytorch.callbacks import Callback

    class StepTimer(Callback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.start = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.times.append(time.perf_counter() - self.start)

    quiet_lightning()
    module, timer = _module(name, quick, points), StepTimer()
    loader = torch.utils.data.DataLoader(_Repeat(synthetic_batch(batch, points), steps + 2), batch_size=None)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer = L.Trainer(max_steps=steps + 2, accelerator=_device(), devices=1, precision=precision, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, num_sanity_val_steps=0, callbacks=[timer])
    trainer.fit(module, train_dataloaders=loader)
    step_s = float(np.median(timer.times[2:]))
    row: dict[str, Any] = {"denoiser": name, "batch": batch, "points": points, "precision": precision,
                           "params_M": sum(p.numel() for p in module.denoiser.parameters()) / 1e6,
                           "train_step_s": step_s, "train_scans_per_s": batch / step_s}
    if torch.cuda.is_available():
        row["peak_mem_MB"] = torch.cuda.max_memory_allocated() / 2**20
        row.update(_flops(module, batch, points, step_s, precision))
    return row


def _flops(module, batch: int, points: int, step_s: float, precision: str) -> dict[str, Any]:  # noqa: ANN001
    """Achieved TFLOP/s of a training step (forward + backward FLOPs / measured step time) and its share of peak."""
    from torch.utils.flop_counter import FlopCounterMode

    b = {k: v.cuda() for k, v in synthetic_batch(batch, points).items()}
    den = module.denoiser.cuda()
    counter = FlopCounterMode(display=False)
    dtype = torch.bfloat16 if precision.startswith("bf16") else torch.float32
    with counter, torch.autocast("cuda", dtype=dtype, enabled=dtype == torch.bfloat16):
        t = torch.randint(0, 1000, (batch,), device="cuda")
        den(b["points"], t, encoder_hidden_states=b["spine"]).sample.float().pow(2).mean().backward()
    tflops = counter.get_total_flops() / step_s / 1e12
    gpu = torch.cuda.get_device_name(0)
    peak = next((v for k, v in PEAK_TFLOPS.items() if k in gpu), None)
    key = "bf16" if dtype == torch.bfloat16 else "fp32"
    return {"achieved_TFLOPs": tflops, "peak_fraction": tflops / peak[key] if peak else None}


@torch.no_grad()
def measure_sampling(name: str, quick: bool, sampler: str, steps: int, batch: int, points: int,
                     guidance_scale: float = 1.0) -> dict[str, Any]:
    """Wall time to generate ``batch`` scans with ``sampler`` x ``steps`` (one warm-up step run first)."""
    module = _module(name, quick, points).to(_device()).eval()
    pipe = module.to_pipeline(sampler=sampler)
    pipe.set_progress_bar_config(disable=True)
    spine = synthetic_batch(batch, points)["spine"]
    pipe.sample_normalized(spine, num_points=points, num_inference_steps=1)  # warm-up (kernels, allocator)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    pipe.sample_normalized(spine, num_points=points, num_inference_steps=steps, guidance_scale=guidance_scale,
                           generator=torch.Generator().manual_seed(0))
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    total = time.perf_counter() - start
    evals = len(pipe.scheduler.timesteps)  # Heun evaluates twice per step
    return {"denoiser": name, "sampler": sampler, "steps": steps, "guidance_scale": guidance_scale, "batch": batch,
            "points": points, "denoiser_evals": evals, "s_per_scan": total / batch,
            "ms_per_eval_per_scan": 1e3 * total / evals / batch}


def _in_fresh_process(fn, *args, **kwargs) -> dict[str, Any]:  # noqa: ANN001
    """Run ``fn`` in a forked process (CPU) so that its peak RSS is its own; in-process on a GPU."""
    if torch.cuda.is_available():
        return fn(*args, **kwargs)
    ctx = mp.get_context("fork")
    queue = ctx.Queue()

    def target() -> None:
        try:
            row = fn(*args, **kwargs)
            row["peak_rss_MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            queue.put(row)
        except BaseException as exc:  # report, do not hang the parent
            queue.put({"error": f"{type(exc).__name__}: {exc}"})

    proc = ctx.Process(target=target)
    proc.start()
    row = queue.get()
    proc.join()
    if "error" in row:
        raise RuntimeError(f"{fn.__name__}{args}: {row['error']}")
    return row


def run(quick: bool, train_steps: int, denoisers: tuple[str, ...], scaling_denoisers: tuple[str, ...],
        save: Any = None) -> dict[str, Any]:  # noqa: ANN401
    """Measure every section; ``save(rows)`` is called after each row (partial results survive an interruption)."""
    precisions = ["32-true", "bf16-mixed"] if torch.cuda.is_available() else ["32-true"]
    train_batch = 4 if quick else 32
    rows: dict[str, list[dict[str, Any]]] = {"train": [], "sampling": [], "points": [], "batch": []}

    def log(section: str, row: dict[str, Any]) -> None:
        rows[section].append(row)
        print(section, {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
        if save is not None:
            save(rows)

    for name in denoisers:
        for precision in precisions:
            log("train", _in_fresh_process(measure_training, name, quick, train_batch, 2048, train_steps, precision))

    sample_batch = 4 if quick else 32
    grid = [("ddpm", 100 if quick else 1000)] + [(s, n) for s in ("ddim", "dpm++") for n in (10, 20, 50)]
    grid += [("unipc", 20), ("euler", 20), ("heun", 20)]
    for sampler, steps in grid:
        log("sampling", _in_fresh_process(measure_sampling, denoisers[0], quick, sampler, steps, sample_batch, 2048))
    log("sampling", _in_fresh_process(measure_sampling, denoisers[0], quick, "dpm++", 20, sample_batch, 2048, 2.0))
    for name in denoisers[1:]:
        log("sampling", _in_fresh_process(measure_sampling, name, quick, "dpm++", 20, sample_batch, 2048))

    for name in scaling_denoisers:
        for points in (1024, 2048, 4096, 8192):
            row = _in_fresh_process(measure_training, name, quick, train_batch, points, train_steps)
            row.update({k: v for k, v in _in_fresh_process(measure_sampling, name, quick, "dpm++", 2, train_batch, points).items()
                        if k in ("ms_per_eval_per_scan",)})
            log("points", row)
        for batch in ((1, 4, 8) if quick else (1, 8, 32, 64)):
            row = _in_fresh_process(measure_training, name, quick, batch, 2048, train_steps)
            row.update({k: v for k, v in _in_fresh_process(measure_sampling, name, quick, "dpm++", 2, batch, 2048).items()
                        if k in ("ms_per_eval_per_scan",)})
            log("batch", row)
    return rows


def to_markdown(rows: dict[str, list[dict[str, Any]]], meta: dict[str, Any]) -> str:
    mem = ("peak_mem_MB", "peak GPU MB", ".0f") if torch.cuda.is_available() else ("peak_rss_MB", "peak RSS MB", ".0f")
    gpu_cols = [("achieved_TFLOPs", "TFLOP/s", ".2f"), ("peak_fraction", "of peak", ".1%")] if torch.cuda.is_available() else []
    train_cols = [("denoiser", "denoiser", ""), ("params_M", "params (M)", ".2f"), ("precision", "precision", ""),
                  ("batch", "batch", "d"), ("points", "points", "d"), ("train_step_s", "s / step", ".3f"),
                  ("train_scans_per_s", "scans / s", ".2f"), mem, *gpu_cols]
    sample_cols = [("denoiser", "denoiser", ""), ("sampler", "sampler", ""), ("steps", "steps", "d"),
                   ("guidance_scale", "guidance", ".1f"), ("denoiser_evals", "evals", "d"), ("batch", "batch", "d"),
                   ("s_per_scan", "s / scan", ".3f"), ("ms_per_eval_per_scan", "ms / eval / scan", ".2f"),
                   ("peak_rss_MB", "peak RSS MB", ".0f")]
    scale_cols = [c for c in train_cols if c[0] != "precision"] + [("ms_per_eval_per_scan", "sampling ms / eval / scan", ".2f")]
    hw = meta["hardware"]
    status = "" if meta.get("complete") else " (PARTIAL: the run was interrupted or is still running)"
    return "\n\n".join([
        f"# Speed ({'quick, CPU-sized denoisers' if meta['quick'] else 'full, configs/*.yaml denoisers'}){status}",
        f"Command: `{meta['command']}`  \nHardware: {hw.get('gpu', hw['processor'])}, {hw['cpu_count']} CPUs, "
        f"torch {hw['torch']} ({hw['torch_threads']} threads), load average at start {hw.get('load_average_at_start')}, "
        f"last {meta.get('load_average_now')} ("
        + ("other jobs ran alongside" if machine_was_busy(
            [(hw.get("load_average_at_start") or [0])[0], (meta.get("load_average_now") or [0])[0]], hw["cpu_count"])
           else "otherwise idle") + "). "
        f"Training: median of {meta['train_steps']} steps after 2 warm-up steps, synthetic sheet-like backs.",
        "## Training throughput at 2048 points", markdown_table(rows["train"], train_cols),
        "## Sampling time per scan (2048 points)", markdown_table(rows["sampling"], sample_cols),
        "## Scaling with the number of points", markdown_table(rows["points"], scale_cols),
        "## Scaling with batch size (2048 points)", markdown_table(rows["batch"], scale_cols),
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CPU-sized denoisers and sizes")
    parser.add_argument("--train-steps", type=int, default=None, help="timed training steps per row (default 3 quick, 20 full)")
    parser.add_argument("--denoisers", nargs="+", default=list(DENOISERS), choices=DENOISERS)
    parser.add_argument("--scaling-denoisers", nargs="+", choices=DENOISERS,
                        help="denoisers of the points/batch scaling sections (default: all; --quick: pvcnn)")
    args = parser.parse_args()
    steps = args.train_steps or (3 if args.quick else 20)
    scaling = tuple(args.scaling_denoisers or (["pvcnn"] if args.quick else args.denoisers))
    meta = {"quick": args.quick, "train_steps": steps, "command": command_line(), "hardware": hardware_info(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "complete": False}
    stem = "speed_quick" if args.quick else "speed"

    def save(rows: dict[str, list[dict[str, Any]]]) -> tuple[Path, Path]:
        meta["load_average_now"] = [round(x, 2) for x in os.getloadavg()]
        return write_results(stem, {"meta": meta, **rows}, to_markdown(rows, meta))

    rows = run(args.quick, steps, tuple(args.denoisers), scaling, save)
    meta["complete"] = True
    js, md = save(rows)
    print(f"wrote {js} and {md}")


if __name__ == "__main__":
    main()
