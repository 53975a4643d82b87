"""Named metrics for ``python -m pcdiff.eval``: name -> function plus the extra CLI options it declares.

A metric is a function ``fn(inputs: EvalInputs, **options) -> EvalOutput`` registered with
:func:`register_metric`. To add one (e.g. the learned ``spine_estimator``), in your own module::

    from pcdiff.metrics.registry import EvalInputs, Option, register_metric

    @register_metric("spine_estimator", "distance of an estimator's predicted ESL to the requested one",
                     options=(Option("--estimator-checkpoint", str, None, "checkpoint (.ckpt)"),),
                     needs_reference=False)
    def _spine_estimator(inputs: EvalInputs, estimator_checkpoint: str | None) -> EvalOutput: ...

and list the module in :data:`PLUGIN_MODULES` (or pass ``--plugin your.module`` on the command line).
Each option's ``dest`` (``--estimator-checkpoint`` -> ``estimator_checkpoint``) is the keyword the
function receives.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from pcdiff.data.sample import BackScan

from .chamfer import chamfer_distance
from .emd import earth_movers_distance
from .fscore import fscore
from .generation import generation_metrics
from .jsd import jsd_between_sets
from .spine import spine_conditioning_metrics

# Modules imported by pcdiff.eval before parsing, so their register_metric calls run (by name: metrics/
# does not import the estimator package, which builds on it). A module that cannot be imported is an error.
PLUGIN_MODULES: list[str] = ["pcdiff.estimator.eval_metric"]


@dataclass(frozen=True)
class Option:
    """An extra command-line option of a metric: ``flag`` (``--x-y``), type, default and help."""

    flag: str
    type: type
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


@dataclass
class EvalInputs:
    """What every metric receives.

    Attributes:
        generated: the generated scans as read (full resolution, mm, with their ``esl`` when stored).
        reference: the reference scans, or None when none was given.
        generated_points: (G, N, 3) float32 tensor on ``device``: the generated scans' points, as
            given when every scan has the same count, else resampled to N (``--num-points``),
            normalised as configured; (G, 0, 3) when no selected metric reads points (``uses_points``).
        reference_points: (R, N, 3) likewise, or None.
        pairs: (generated index, reference index) for paired metrics: by subject name, or by position
            with ``--pair-by-position``; None when the sets cannot be paired (``pairing_error`` says why).
        unit: ``"mm"`` or ``"normalised"`` (after ``--normalize``).
        device: torch device of the tensors.
        progress: whether to show progress bars.
        pairing_error: why ``pairs`` is None (unmatched names), to repeat in a metric's error.
        cache: scratch space shared by metrics of one run (e.g. the MMD/COV/1-NNA computation).
    """

    generated: list[BackScan]
    reference: list[BackScan] | None
    generated_points: torch.Tensor
    reference_points: torch.Tensor | None
    pairs: list[tuple[int, int]] | None
    unit: str = "mm"
    pairing_error: str | None = None
    device: torch.device = torch.device("cpu")
    progress: bool = True
    cache: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalOutput:
    """Summary values (``name [unit]`` -> float), optional per-sample values (name -> list) and notes
    (lines ``python -m pcdiff.eval`` prints above the table and stores under ``"notes"``)."""

    summary: dict[str, float]
    per_sample: dict[str, list[Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class MetricSpec:
    """A registered metric. ``paired``: compares generated scan i with its reference partner (needs
    :attr:`EvalInputs.pairs`); ``uses_points``: reads ``generated_points`` / ``reference_points``
    (False: reads the full scans only, so no resampling is done for it)."""

    name: str
    fn: Callable[..., EvalOutput]
    help: str
    options: tuple[Option, ...] = ()
    needs_reference: bool = True
    paired: bool = False
    uses_points: bool = True


METRICS: dict[str, MetricSpec] = {}


def register_metric(
    name: str,
    help: str,
    *,
    options: tuple[Option, ...] = (),
    needs_reference: bool = True,
    paired: bool = False,
    uses_points: bool = True,
) -> Callable[[Callable[..., EvalOutput]], Callable[..., EvalOutput]]:
    """Decorator registering ``fn`` under ``name`` (see :class:`MetricSpec` for the flags); refuses
    duplicate names and clashing option flags."""

    def decorator(fn: Callable[..., EvalOutput]) -> Callable[..., EvalOutput]:
        if name in METRICS or name == "all":
            raise ValueError(f"metric name {name!r} is already registered (or reserved)")
        flags = {o.flag: spec.name for spec in METRICS.values() for o in spec.options}
        for option in options:
            if option.flag in flags and option not in {o for s in METRICS.values() for o in s.options}:
                raise ValueError(f"option {option.flag} of metric {name!r} clashes with metric {flags[option.flag]!r}")
        METRICS[name] = MetricSpec(name, fn, help, options, needs_reference, paired, uses_points)
        return fn

    return decorator


def load_plugins(extra: list[str] | None = None, builtin_plugins: bool = True) -> None:
    """Import ``extra`` modules and (with ``builtin_plugins``) :data:`PLUGIN_MODULES` so their metrics
    register themselves; a plugin module that does not exist raises ``ModuleNotFoundError`` naming it."""
    for module in [*(PLUGIN_MODULES if builtin_plugins else []), *(extra or [])]:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            raise ModuleNotFoundError(f"metric plugin {module!r} could not be imported: {exc}", name=exc.name) from exc


# ----------------------------------------------------------------------------------------------------
# Built-in metrics
# ----------------------------------------------------------------------------------------------------

EMD_METHOD = Option(
    "--emd-method", str, "exact", "EMD solver: exact assignment or certified auction", ("exact", "auction")
)
EMD_TOL = Option("--emd-rel-tol", float, 0.01, "auction EMD: certified relative error bound")


def _paired(inputs: EvalInputs, metric: str) -> tuple[torch.Tensor, torch.Tensor]:
    if inputs.reference_points is None or inputs.pairs is None:
        why = f" ({inputs.pairing_error})" if inputs.pairing_error else ""
        raise ValueError(f"--metric {metric}: needs --reference scans that pair with the generated ones{why}")
    g, r = zip(*inputs.pairs)
    return inputs.generated_points[list(g)], inputs.reference_points[list(r)]


def _mean(values: torch.Tensor) -> float:
    return float(values.double().mean())


@register_metric("chamfer", "paired Chamfer distance, both conventions (squared-sum and L1-mean)", paired=True)
def _chamfer(inputs: EvalInputs) -> EvalOutput:
    g, r = _paired(inputs, "chamfer")
    sq = chamfer_distance(g, r, squared=True, reduction="sum")
    l1 = chamfer_distance(g, r, squared=False, reduction="mean")
    u = inputs.unit
    return EvalOutput(
        {f"CD squared-sum [{u}^2]": _mean(sq), f"CD L1-mean [{u}]": _mean(l1)},
        {"CD squared-sum": sq.tolist(), "CD L1-mean": l1.tolist()},
    )


@register_metric(
    "emd", "paired Earth Mover's distance (mean matched distance)", options=(EMD_METHOD, EMD_TOL), paired=True
)
def _emd(inputs: EvalInputs, emd_method: str, emd_rel_tol: float) -> EvalOutput:
    g, r = _paired(inputs, "emd")
    values = torch.cat(
        [earth_movers_distance(g[i : i + 8], r[i : i + 8], method=emd_method, rel_tol=emd_rel_tol).cpu() for i in range(0, len(g), 8)]
    )
    return EvalOutput({f"EMD ({emd_method}) [{inputs.unit}]": _mean(values)}, {"EMD": values.tolist()})


@register_metric(
    "fscore",
    "paired precision / recall / F-score at a distance threshold",
    options=(Option("--fscore-threshold", float, 10.0, "F-score distance threshold (units of the clouds, mm by default)"),),
    paired=True,
)
def _fscore(inputs: EvalInputs, fscore_threshold: float) -> EvalOutput:
    g, r = _paired(inputs, "fscore")
    out = fscore(g, r, fscore_threshold)
    t = f"@{fscore_threshold:g}{inputs.unit}"
    return EvalOutput(
        {f"{k.capitalize()} {t} [%]": 100 * _mean(v) for k, v in out.items()},
        {k: v.tolist() for k, v in out.items()},
    )


SET_DISTANCES = Option("--set-distances", str, "cd,emd", "distances for MMD/COV/1-NNA: cd, emd or cd,emd")


def _generation(inputs: EvalInputs, set_distances: str, emd_method: str, emd_rel_tol: float) -> dict[str, float]:
    if inputs.reference_points is None:
        raise ValueError("set metrics (mmd, cov, 1nna, jsd) need --reference scans")
    distances = tuple(d.strip() for d in set_distances.split(",") if d.strip())
    if not distances or set(distances) - {"cd", "emd"}:
        raise ValueError(f"--set-distances: expected 'cd', 'emd' or 'cd,emd', got {set_distances!r}")
    key = f"generation:{distances}:{emd_method}:{emd_rel_tol}"
    if key not in inputs.cache:
        inputs.cache[key] = generation_metrics(
            inputs.generated_points, inputs.reference_points, distances=distances,
            emd_method=emd_method, emd_rel_tol=emd_rel_tol, progress=inputs.progress,
        )  # fmt: skip
    return inputs.cache[key]


def _set_metric(prefix: str, unit_of: Callable[[str, str], str]) -> Callable[..., EvalOutput]:
    def fn(inputs: EvalInputs, set_distances: str, emd_method: str, emd_rel_tol: float) -> EvalOutput:
        res = _generation(inputs, set_distances, emd_method, emd_rel_tol)
        summary = {}
        for k, v in res.items():
            if k.startswith(prefix + "-"):
                summary[f"{k} [{unit_of(k, inputs.unit)}]"] = v
        if "EMD-pairs" in res and "emd" in set_distances:
            summary["EMD pairs solved"] = res["EMD-pairs"]
        return EvalOutput(summary)

    return fn


_SET_OPTIONS = (SET_DISTANCES, EMD_METHOD, EMD_TOL)
register_metric("mmd", "minimum matching distance (fidelity, PointFlow convention)", options=_SET_OPTIONS)(
    _set_metric("MMD", lambda k, u: f"{u}^2" if k.endswith("CD") else u)
)
register_metric("cov", "coverage of the reference set (diversity), in %", options=_SET_OPTIONS)(
    _set_metric("COV", lambda k, u: "%")
)
register_metric("1nna", "1-nearest-neighbour accuracy, in % (50% ideal)", options=_SET_OPTIONS)(
    _set_metric("1-NNA", lambda k, u: "%")
)


@register_metric(
    "jsd",
    "Jensen-Shannon divergence of occupancy grids (both sets mapped jointly into the unit sphere)",
    options=(Option("--jsd-resolution", int, 28, "occupancy grid resolution per axis"),),
)
def _jsd(inputs: EvalInputs, jsd_resolution: int) -> EvalOutput:
    if inputs.reference_points is None:
        raise ValueError("--metric jsd needs --reference scans")
    value = jsd_between_sets(inputs.generated_points, inputs.reference_points, resolution=jsd_resolution)
    return EvalOutput({"JSD [bits]": value})


@register_metric(
    "spine",
    "distance of the requested ESL to the generated surface and its lateral deviation from the surface midline",
    options=(
        Option(
            "--spine-line", str, "auto", "requested ESL: the generated scan's own, the paired reference's, or auto",
            ("auto", "generated", "reference"),
        ),
        Option("--spine-estimator", str, "symmetry", "surface midline estimator", ("symmetry", "furrow")),
        Option("--spine-slices", int, 32, "horizontal slices for the lateral deviation"),
    ),
    needs_reference=False,
    uses_points=False,
)
def _spine(inputs: EvalInputs, spine_line: str, spine_estimator: str, spine_slices: int) -> EvalOutput:
    paired = dict(inputs.pairs or [])
    rows: dict[str, list[Any]] = {"name": []}
    for i, scan in enumerate(inputs.generated):
        line = None
        if spine_line in ("auto", "generated"):
            line = scan.esl
        if line is None and spine_line in ("auto", "reference") and inputs.reference is not None and i in paired:
            line = inputs.reference[paired[i]].esl
        if line is None:
            why = f" (no reference partner: {inputs.pairing_error})" if inputs.pairing_error and spine_line != "generated" else ""
            raise ValueError(
                f"--metric spine: no requested ESL for generated scan {scan.name!r} (--spine-line {spine_line}): "
                f"store it in the generated scan (its JSON / an 'esl' array) or give --reference scans with an ESL{why}"
            )
        values = spine_conditioning_metrics(scan.points, line, num_slices=spine_slices, estimator=spine_estimator)
        rows["name"].append(scan.name)
        for k, v in values.items():
            rows.setdefault(k, []).append(v)
    summary = {
        "ESL-surface mean [mm]": float(np.mean(rows["esl_surface_mean"])),
        "ESL-surface max, mean over scans [mm]": float(np.mean(rows["esl_surface_max"])),
        "ESL-local plane mean [mm]": float(np.mean(rows["esl_plane_mean"])),
        f"lateral dev. ({spine_estimator}) mean [mm]": float(np.mean(rows["lateral_dev_mean"])),
        f"lateral dev. ({spine_estimator}) median [mm]": float(np.mean(rows["lateral_dev_median"])),
        f"lateral dev. ({spine_estimator}) max, mean over scans [mm]": float(np.mean(rows["lateral_dev_max"])),
    }
    return EvalOutput(summary, rows)


# What ``--metric all`` runs: the geometric metrics above. Plugins (e.g. ``spine_estimator``, which needs
# a checkpoint) are run by naming them.
BUILTIN_METRICS: tuple[str, ...] = tuple(METRICS)
