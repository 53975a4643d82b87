"""Generate synthetic back scans for spinal lines and write them in the 4D-Spine format.

    python -m pcdiff.generate --checkpoint outputs/quickstart/last.ckpt --cobb 0 40 --curve-type thoracic --out gen
    python -m pcdiff.generate --pipeline exported/ --spine my_esl.csv --num-per-spine 4 --out gen
    python -m pcdiff.generate --checkpoint last.ckpt --n 100 --out gen --devices 2   # spines from the phantom prior
    python -m pcdiff.generate --pipeline exported/ --cobb 45 --curve-type thoracic --phantom-start 0.2 --out gen
    python -m pcdiff.generate --pipeline exported/ --cobb 45 --curve-type thoracic --donors my_backs/ --donor-start 0.2 --out gen

Spinal lines (mm, 4D-Spine frame) come from one of:
  * files (``--spine``): CSV with columns x, y, z (``,`` or ``;``, a header row and a ``line`` column esl/isl
    allowed) or JSON holding a list of [x, y, z] or an object with an ``esl``/``isl`` (or ``spine``/``points``)
    list, e.g. the ``<name>_processed.json`` of existing 4D-Spine subjects (new backs for their spines); read by
    the parser a data folder uses, :mod:`pcdiff.data.readers.spine_files`, which lists its rules;
  * phantom parameters (``--cobb``, ``--curve-type``, ``--apex``, ``--convexity``, ``--kyphosis``,
    ``--lordosis``, ``--length-mm``): one spine per combination of the values given, the other
    parameters at :class:`pcdiff.data.phantom.SpineParams` defaults;
  * the phantom's spine distribution (``--n``, drawn with ``--seed``), the default.

Each scan is written with :func:`pcdiff.data.io.write_subject` as ``OUT/<name>/<name>_processed.ply`` +
``.json``; the JSON holds the conditioning line (as ``esl`` or ``isl``, the line the model was trained
on), the generation settings and, for phantom spines, their parameters (and the C7/DM landmarks,
which are the ends of a phantom ESL). A spine file that holds landmarks (a subject's ``_processed.json``) gives them
to its backs, and a spine known with both lines (phantom parameters, a file holding both) writes both, so a folder of
generated backs can train a landmark-frame or ISL estimator. Scan ``i`` draws its noise from its own seed derived from
``(--seed, i)``, so the output does not depend on batch size or device count. Batches run through
Lightning's predict loop (``--devices``, ``--accelerator``), with its progress bar.

Starts (SDEdit: the start is noised to ``STRENGTH`` of the sampler's steps and denoised from there; both need the
spine's ESL and ISL, so phantom parameters or files holding both lines):
  * ``--phantom-start S``: a phantom of the spine's lines (:func:`pcdiff.data.phantom.phantom_for_lines`);
  * ``--donors DIR --donor-start S``: a real back of DIR (any layout pcdiff reads, scans with ESL and ISL) moved
    onto the spine (:func:`pcdiff.data.respine.respine_donor`): copy ``j`` of a spine starts from the ``j``-th
    nearest donor by ESL shape. Each scan's JSON names its donor (``generated.start_from``), so a back derived
    from a subject can be traced to it (and kept out of that subject's test fold).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader, Dataset

from pcdiff.data.phantom import SpineParams, sample_spine_params, spine_lines
from pcdiff.data.phantom.from_lines import check_line
from pcdiff.data.respine import MIN_DONORS_TO_FIT, PCDARE_ROTATION_GAIN, Donor, fit_rotation_gain, rank_donors, respine_donor
from pcdiff.data.readers.spine_files import read_spine_line, read_spine_lines
from pcdiff.data.readers.writer import write_subject
from pcdiff.data.sample import BackScan
from pcdiff.geometry.polyline import orient_top_down, resample_polyline
from pcdiff.pipelines import SpineToBackPipeline

log = logging.getLogger(__name__)

#: CLI option -> SpineParams field, for spines given by parameters
PARAM_OPTIONS = {
    "cobb": "cobb_deg",
    "curve_type": "curve_type",
    "apex": "apex",
    "convexity": "convexity",
    "kyphosis": "kyphosis_deg",
    "lordosis": "lordosis_deg",
    "length_mm": "length_mm",
}


@dataclass
class SpineRequest:
    """One spinal line to generate for: the line (L, 3) mm, where it came from, and its output name."""

    name: str
    line: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    landmarks: dict[str, np.ndarray] = field(default_factory=dict)
    lines: dict[str, np.ndarray] = field(default_factory=dict)  # ESL and ISL (mm) where both are known

    @property
    def has_both_lines(self) -> bool:
        """Whether the request knows its ESL and its ISL (what a phantom or donor start needs)."""
        return set(self.lines) == {"esl", "isl"}

    def both(self, option: str) -> tuple[np.ndarray, np.ndarray]:
        """The request's ESL and ISL (mm); a ValueError naming ``option`` where one is missing."""
        if not self.has_both_lines:
            raise ValueError(f"{self.name}: {option} needs both the ESL and the ISL of the spine (a labelled file)")
        return self.lines["esl"], self.lines["isl"]

    def phantom(self, seed: int, num_points: int) -> np.ndarray:
        """(num_points, 3) float32 mm: a phantom back around this request's lines (``--phantom-start``)."""
        from pcdiff.data.phantom.from_lines import phantom_for_lines

        return phantom_for_lines(*self.both("--phantom-start"), seed, num_points).points


class DonorStart:
    """``--donor-start``: copy ``j`` of a request starts from its ``j``-th nearest donor (cycling), moved onto its lines.

    The turn's gain is fitted on the donors themselves (:func:`pcdiff.data.respine.fit_rotation_gain`, on ``num_points``
    of each, drawn with seed 0); fewer than :data:`~pcdiff.data.respine.MIN_DONORS_TO_FIT` donors, or donors whose
    spines are too alike to fit it, get the gain fitted on the public PCdare backs
    (:data:`pcdiff.data.respine.PCDARE_ROTATION_GAIN`). Donors whose lines the move cannot use (fewer than 4
    points, under 100 mm of height) are left out with a warning naming them.

    Args:
        donors: real back scans with ESL and ISL (mm, each in its own frame).
        num_points: N points drawn (seeded, without replacement where the donor has enough) from the donor.
    """

    def __init__(self, donors: Sequence[BackScan], num_points: int) -> None:
        usable, skipped = [], []
        for d in donors:
            if d.esl is None or d.isl is None:
                continue
            try:
                usable.append(Donor(d.points, check_line(d.esl, "esl"), check_line(d.isl, "isl"), d.name))
            except ValueError as exc:
                skipped.append(f"{d.name} ({exc})")
        if skipped:
            log.warning("--donors: left out %d scans whose lines cannot be used: %s", len(skipped), "; ".join(skipped))
        if not usable:
            raise ValueError("--donors: no scan with a usable ESL and ISL")
        self.donors, self.num_points = usable, num_points
        self.rotation_gain = PCDARE_ROTATION_GAIN
        if len(usable) >= MIN_DONORS_TO_FIT:
            rng = np.random.default_rng(0)
            try:
                self.rotation_gain = fit_rotation_gain([dataclasses.replace(d, points=self._draw(d, rng)) for d in usable])
            except ValueError as exc:
                log.warning("--donors: %s; the turn gain stays at PCdare's %.2f", exc, PCDARE_ROTATION_GAIN)
        log.info("--donor-start: %d donors, turn gain %.2f", len(usable), self.rotation_gain)

    def _draw(self, donor: Donor, rng: np.random.Generator) -> np.ndarray:
        """``num_points`` of the donor's points, without replacement where it has enough."""
        n = len(donor.points)
        return donor.points[rng.choice(n, self.num_points, replace=n < self.num_points)]

    def __call__(self, request: SpineRequest, seed: int, copy: int) -> tuple[np.ndarray, str]:
        """``(points (N, 3) float32 mm, donor name)`` for copy ``copy`` of ``request``, drawn with ``seed``."""
        esl, isl = request.both("--donor-start")
        donor = self.donors[rank_donors(esl, [d.esl for d in self.donors])[copy % len(self.donors)]]
        drawn = dataclasses.replace(donor, points=self._draw(donor, np.random.default_rng(seed)))
        return respine_donor(drawn, esl, isl, rotation_gain=self.rotation_gain), donor.name


# ---------------------------------------------------------------------------------------- spine sources
def read_spine_file(path: Path, which: str | None = "esl") -> np.ndarray:
    """Read the spinal line (L, 3) float32 in mm of ``--spine`` file ``path`` (``.csv``, ``.txt`` or ``.json``).

    The file is parsed by :func:`pcdiff.data.readers.spine_files.read_spine_line`, the parser a data folder uses
    (delimiters, header, ``line`` column and pipeline key: see :mod:`pcdiff.data.readers.spine_files`). A labelled
    file gives its ``which`` line (``"esl"``/``"isl"``; ``None``: the ESL, else the ISL); an unlabelled line (a CSV
    without a ``line`` column, a JSON list, or ``spine``/``points``) is taken as the ``which`` line.

    Raises:
        FileNotFoundError: no such file.
        ValueError: another suffix, or a file the parser refuses (an ``InvalidScanError`` naming it).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--spine {path}: no such file")
    if path.suffix.lower() not in (".csv", ".txt", ".json"):
        raise ValueError(f"--spine {path}: expected a .csv, .txt or .json file")
    return read_spine_line(path, which)


def file_spine(path: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """What a spine file holds beside its requested line, from one parse: ``{"esl", "isl"}`` (each (L, 3) mm, top ->
    bottom) where it holds both lines, else ``{}`` (an unlabelled line is one line), and its landmarks ({name: (3,) mm},
    a subject JSON's ``specialPts``; ``{}`` for a CSV or none)."""
    parsed = read_spine_lines(path)
    both = parsed["esl"] is not None and parsed["isl"] is not None
    return ({k: orient_top_down(parsed[k]) for k in ("esl", "isl")} if both else {}), parsed["landmarks"]


def both_lines(path: Path) -> dict[str, np.ndarray]:
    """``{"esl", "isl"}`` (each (L, 3) mm, top -> bottom) of a file that holds both lines, else ``{}``."""
    return file_spine(path)[0]


def _phantom_request(name: str, params: SpineParams, which: str, source: str) -> SpineRequest:
    esl, isl = spine_lines(params)
    line = esl if which == "esl" else isl
    # the phantom's ESL runs exactly from C7 to DM
    landmarks = {"C7": esl[0], "DM": esl[-1]}
    meta = {"spine_source": source, "phantom": params.to_dict(), "cobb": params.cobb_deg}
    return SpineRequest(name, line, meta, landmarks, {"esl": esl, "isl": isl})


def spine_requests(args: argparse.Namespace, which: str | None) -> list[SpineRequest]:
    """The spinal lines asked for on the command line (files, parameters, or phantom draws), as ``which`` line
    (``"esl"``/``"isl"``); ``None`` before the model is known: a file may hold either line, a phantom gives its ESL."""
    given = {opt: getattr(args, opt) for opt in PARAM_OPTIONS if getattr(args, opt) is not None}
    sources = [bool(args.spine), bool(given), args.n is not None]
    if sum(sources) > 1:
        raise ValueError("give spinal lines one way: --spine files, phantom parameters (--cobb ...), or --n draws")
    requests: list[SpineRequest] = []
    if args.spine:
        for path in args.spine:
            path = Path(path)
            line = orient_top_down(read_spine_file(path, which))
            name = path.parent.name if path.stem.endswith("_processed") else path.stem
            lines, landmarks = file_spine(path)
            requests.append(SpineRequest(name, line, {"spine_source": str(path)}, landmarks, lines))
    elif given:
        if "cobb" in given and "curve_type" not in given and any(c > 0 for c in given["cobb"]):
            raise ValueError("--cobb > 0 needs --curve-type (thoracic, thoracolumbar, lumbar, double_major)")
        keys = list(given)
        for values in itertools.product(*(given[k] for k in keys)):
            try:
                params = SpineParams(**{PARAM_OPTIONS[k]: v for k, v in zip(keys, values)})
            except ValueError as exc:  # out of range: name the options as typed
                typed = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in zip(keys, values))
                raise ValueError(f"{typed}: {exc}") from exc
            tag = "_".join(f"{k}{v}" for k, v in zip(keys, values)).replace(".", "p")
            requests.append(_phantom_request(tag, params, which or "esl", "parameters"))
    else:
        rng = np.random.default_rng(args.seed)
        for i in range(args.n if args.n is not None else 1):
            params = sample_spine_params(rng)
            requests.append(_phantom_request(f"prior{i:04d}", params, which or "esl", "phantom prior"))
    return requests


def scan_seed(seed: int, index: int) -> int:
    """Independent, reproducible noise seed of scan ``index`` in a run seeded with ``seed``."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


# ---------------------------------------------------------------------------------------- predict loop
#: a start for SDEdit: (request, scan seed, copy) -> (points (N, 3) mm, what it was made from)
StartFn = Callable[[SpineRequest, int, int], tuple[np.ndarray, str]]


@dataclass(frozen=True)
class PhantomStart:
    """``--phantom-start``: a phantom of the request's lines with ``num_points`` points, seeded per scan (a class, not a
    closure, so that a spawned data-loader worker or DDP process can pickle it)."""

    num_points: int

    def __call__(self, request: SpineRequest, seed: int, copy: int) -> tuple[np.ndarray, str]:
        return request.phantom(seed, self.num_points), "phantom_for_lines"


class SpineDataset(Dataset):
    """Items ``{"index", "seed", "spine" (K, 3) mm}``: each request repeated ``num_per_spine`` times."""

    def __init__(self, requests: Sequence[SpineRequest], num_per_spine: int, num_keypoints: int, seed: int,
                 start: StartFn | None = None) -> None:
        self.items = [(r, j) for r in requests for j in range(num_per_spine)]
        self.num_per_spine, self.num_keypoints, self.seed = num_per_spine, num_keypoints, seed
        self.start = start

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        """With a ``start``, also ``"init"`` (N, 3) mm, the start of the scan, and ``"start_from"`` (str), its source."""
        request, copy = self.items[i]
        spine = resample_polyline(orient_top_down(request.line), self.num_keypoints)
        item = {"index": i, "seed": scan_seed(self.seed, i), "spine": torch.from_numpy(spine)}
        if self.start is not None:
            init, item["start_from"] = self.start(request, item["seed"], copy)
            item["init"] = torch.from_numpy(np.ascontiguousarray(init, dtype=np.float32))
        return item


class BackGenerator(L.LightningModule):
    """Wraps a :class:`SpineToBackPipeline` so that Lightning's predict loop batches it across devices."""

    def __init__(self, pipeline: SpineToBackPipeline, num_inference_steps: int, guidance_scale: float,
                 num_points: int | None, strength: float = 1.0) -> None:
        super().__init__()
        self.pipeline = pipeline
        self.denoiser = pipeline.denoiser  # registered, so the Trainer moves it to the device
        self.pipeline.set_progress_bar_config(disable=True)  # Lightning's bar counts batches
        self.settings = {"num_inference_steps": num_inference_steps, "guidance_scale": guidance_scale,
                         "num_points": num_points}
        self.strength = strength

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        generators = [torch.Generator().manual_seed(int(s)) for s in batch["seed"]]
        settings = dict(self.settings)
        if "init" in batch:  # SDEdit from the batch's starts; they set the point count
            settings.update(num_points=None, init_backs=batch["init"].cpu(), strength=self.strength)
        return self.pipeline(batch["spine"], generator=generators, output_type="pt", **settings).backs


class ScanWriter(BasePredictionWriter):
    """Writes every generated back as a 4D-Spine subject as soon as its batch is done (on every rank)."""

    def __init__(self, out: Path, dataset: SpineDataset, line: str, meta: dict[str, Any], overwrite: bool) -> None:
        super().__init__(write_interval="batch")
        self.out, self.dataset, self.line, self.meta, self.overwrite = Path(out), dataset, line, meta, overwrite
        self.written: list[Path] = []

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx):  # noqa: ANN001, PLR0913
        starts = batch.get("start_from", [None] * len(prediction))
        for back, index, seed, start in zip(prediction.cpu().numpy(), batch["index"].tolist(), batch["seed"].tolist(), starts):
            request, copy = self.dataset.items[index]
            name = request.name if self.dataset.num_per_spine == 1 else f"{request.name}_{copy:02d}"
            generated = {**self.meta, "seed": int(seed), **({"start_from": start} if start is not None else {})}
            scan = BackScan(
                name=name,
                points=back,
                landmarks=request.landmarks,
                meta={**request.meta, "generated": generated},
                **(request.lines or {self.line: request.line}),
            )
            self.written.append(write_subject(scan, self.out, overwrite=self.overwrite))


# ---------------------------------------------------------------------------------------- loading
def load_pipeline(checkpoint: str | None, pipeline_dir: str | None, sampler: str | None) -> tuple[SpineToBackPipeline, dict[str, Any]]:
    """The pipeline from a training checkpoint (EMA weights) or an exported folder, and its default settings."""
    if (checkpoint is None) == (pipeline_dir is None):
        raise ValueError("give exactly one of --checkpoint (a .ckpt from training) or --pipeline (an exported folder)")
    if checkpoint is not None:
        from pcdiff.diffusion.module import PointDiffusion
        from pcdiff.utils.checkpoints import read_checkpoint

        read_checkpoint(checkpoint)  # one clear line for a file that is not a pcdiff checkpoint, or is damaged
        module = PointDiffusion.load_from_checkpoint(checkpoint, map_location="cpu")
        pipe = module.to_pipeline(sampler=sampler)
        defaults = {"num_inference_steps": module.hparams.num_inference_steps,
                    "guidance_scale": module.hparams.guidance_scale, "source": str(checkpoint)}
    else:
        overrides = {}
        if sampler is not None:
            from pcdiff.diffusion.schedulers import build_sampler

            config_path = Path(pipeline_dir) / "scheduler" / "scheduler_config.json"
            if not config_path.is_file():
                raise FileNotFoundError(f"{config_path}: missing (not an exported pipeline folder?)")
            overrides["scheduler"] = build_sampler(sampler, json.loads(config_path.read_text()))
        pipe = SpineToBackPipeline.from_pretrained(pipeline_dir, **overrides)
        defaults = {"num_inference_steps": pipe.config.get("num_inference_steps", 20),
                    "guidance_scale": pipe.config.get("guidance_scale", 1.0), "source": str(pipeline_dir)}
    pipe.denoiser.eval()
    return pipe, defaults


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pcdiff.generate", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_argument_group("model")
    src.add_argument("--checkpoint", help="training checkpoint (.ckpt); its EMA weights are used")
    src.add_argument("--pipeline", help="exported pipeline folder (python -m pcdiff.export)")
    spine = p.add_argument_group("spinal lines (one way; default: one draw from the phantom prior)")
    spine.add_argument("--spine", nargs="+", help="CSV/JSON files, one spinal line (mm) each")
    spine.add_argument("--cobb", nargs="+", type=float, help="Cobb angles in degrees")
    spine.add_argument("--curve-type", nargs="+", help="none, thoracic, thoracolumbar, lumbar, double_major")
    spine.add_argument("--apex", nargs="+", help="apex level names, e.g. T8 L1")
    spine.add_argument("--convexity", nargs="+", choices=["right", "left"])
    spine.add_argument("--kyphosis", nargs="+", type=float, help="T4-T12 kyphosis in degrees")
    spine.add_argument("--lordosis", nargs="+", type=float, help="L1-S1 lordosis in degrees")
    spine.add_argument("--length-mm", nargs="+", type=float, help="C7-DM length in mm")
    spine.add_argument("--n", type=int, help="number of spines drawn from the phantom prior")
    gen = p.add_argument_group("sampling")
    gen.add_argument("--num-per-spine", type=int, default=1, help="backs per spinal line")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--sampler", help="sampler name (default: the model's), e.g. dpm++, ddim, ddpm, euler, heun")
    gen.add_argument("--steps", type=int, help="sampler steps (default: the model's)")
    gen.add_argument("--guidance-scale", type=float, help="classifier-free guidance weight (default: the model's)")
    gen.add_argument("--num-points", type=int, help="points per back (default: as trained)")
    gen.add_argument("--phantom-start", type=float, metavar="STRENGTH",
                     help="start each back from a phantom of its spine's ESL and ISL (pcdiff.data.phantom.phantom_for_lines) "
                          "noised to this share of the sampler's steps (SDEdit; (0, 1], e.g. 0.2): keeps the phantom's "
                          "anatomy (the rib hump of the spine's rotation), the model redraws the rest")
    gen.add_argument("--donors", help="a folder of real back scans with ESL and ISL (any layout pcdiff reads), for --donor-start")
    gen.add_argument("--donor-start", type=float, metavar="STRENGTH",
                     help="start each back from a donor of --donors (copy j of a spine: its j-th nearest by ESL shape) moved "
                          "onto the spine's ESL and turned by its rotation (pcdiff.data.respine), noised to this share of the "
                          "sampler's steps (SDEdit; (0, 1], e.g. 0.2): keeps a real back's skin, the model redraws the rest")
    run = p.add_argument_group("output and devices")
    run.add_argument("--out", required=True, help="output folder (4D-Spine layout)")
    run.add_argument("--overwrite", action="store_true", help="replace existing subjects of the same name")
    run.add_argument("--batch-size", type=int, default=16)
    run.add_argument("--accelerator", default="auto")
    run.add_argument("--devices", default="auto")
    return p


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Usage errors (exit 2) for every setting that can be checked before the model loads: counts, paths, and
    the spinal lines asked for (phantom parameters in range, spine files readable)."""
    counts = {"--num-per-spine": args.num_per_spine, "--n": args.n, "--steps": args.steps,
              "--num-points": args.num_points, "--batch-size": args.batch_size}  # fmt: skip
    for option, value in counts.items():
        if value is not None and value < 1:
            parser.error(f"{option} must be >= 1, got {value}")
    for option, strength in (("--phantom-start", args.phantom_start), ("--donor-start", args.donor_start)):
        if strength is not None and not 0.0 < strength <= 1.0:
            parser.error(f"{option} must lie in (0, 1], got {strength}")
    if args.phantom_start is not None and args.donor_start is not None:
        parser.error("give one start: --phantom-start or --donor-start")
    if (args.donors is None) != (args.donor_start is None):
        parser.error("--donor-start and --donors go together (a strength and the folder of real backs to start from)")
    if args.donors is not None and not Path(args.donors).is_dir():
        parser.error(f"--donors: {args.donors} is not a folder")
    if (args.checkpoint is None) == (args.pipeline is None):
        parser.error("give exactly one of --checkpoint (a .ckpt from training) or --pipeline (an exported folder)")
    if args.checkpoint is not None and not Path(args.checkpoint).is_file():
        kind = "is a folder; expected a .ckpt file (an exported folder goes to --pipeline)"
        parser.error(f"--checkpoint: {args.checkpoint} " + (kind if Path(args.checkpoint).is_dir() else "does not exist"))
    if args.pipeline is not None and not Path(args.pipeline).is_dir():
        kind = "is a file; expected an exported pipeline folder (a .ckpt goes to --checkpoint)"
        parser.error(f"--pipeline: {args.pipeline} " + (kind if Path(args.pipeline).exists() else "does not exist"))
    try:
        requests = spine_requests(args, None)  # the model's line is not known yet: a file may hold either
    except (ValueError, FileNotFoundError) as exc:
        parser.error(str(exc))
    names = [r.name for r in requests]
    if len(set(names)) != len(names):
        parser.error(f"spinal lines with the same name: {names}; give files distinct names")
    option = "--phantom-start" if args.phantom_start is not None else "--donor-start" if args.donor_start is not None else None
    one_line = [r.name for r in requests if not r.has_both_lines]
    if option is not None and one_line:
        parser.error(f"{option} needs both the ESL and the ISL of each spine; these files hold one line: {one_line}")


def read_donors(folder: str, parser: argparse.ArgumentParser) -> list[BackScan]:
    """The ``--donors`` scans with both lines (unreadable ones skipped with a warning); a usage error if none."""
    from pcdiff.data.io import read_dataset

    try:
        scans = [s for s in read_dataset(Path(folder), skip_invalid=True) if s.esl is not None and s.isl is not None]
    except (ValueError, FileNotFoundError) as exc:
        parser.error(f"--donors {folder}: {exc}")
    if not scans:
        parser.error(f"--donors {folder}: no scan with both an ESL and an ISL")
    return scans


def main(argv: Sequence[str] | None = None) -> list[Path]:
    """Run the CLI; returns the written subject folders of this process."""
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)
    try:
        pipe, defaults = load_pipeline(args.checkpoint, args.pipeline, args.sampler)
    except (ValueError, FileNotFoundError) as exc:
        parser.error(f"{'--checkpoint' if args.checkpoint else '--pipeline'}: {exc}")
    which = pipe.config.line
    requests = spine_requests(args, which)
    steps = args.steps if args.steps is not None else defaults["num_inference_steps"]
    guidance = args.guidance_scale if args.guidance_scale is not None else defaults["guidance_scale"]
    start_points = args.num_points or pipe.config.num_points
    meta = {"model": defaults["source"], "sampler": type(pipe.scheduler).__name__, "num_inference_steps": steps,
            "guidance_scale": guidance, "conditioning_line": which}
    start, strength = None, 1.0
    if args.phantom_start is not None:
        start, strength = PhantomStart(start_points), args.phantom_start
        meta["phantom_start"] = {"strength": strength, "init": "pcdiff.data.phantom.phantom_for_lines"}
    elif args.donor_start is not None:
        donors = read_donors(args.donors, parser)
        donor_start = DonorStart(donors, start_points)
        if args.num_per_spine > len(donor_start.donors):
            log.warning("--num-per-spine %d > %d donors: copies beyond %d reuse donors (near-duplicates at a low --donor-start)",
                        args.num_per_spine, len(donor_start.donors), len(donor_start.donors))
        start, strength = donor_start, args.donor_start
        meta["donor_start"] = {"strength": strength, "init": "pcdiff.data.respine.respine_donor", "donors": str(args.donors),
                               "rotation_gain": donor_start.rotation_gain}
    dataset = SpineDataset(requests, args.num_per_spine, pipe.config.num_keypoints, args.seed, start)
    writer = ScanWriter(Path(args.out), dataset, which, meta, args.overwrite)
    devices = int(args.devices) if str(args.devices).isdigit() else args.devices
    trainer = L.Trainer(accelerator=args.accelerator, devices=devices, logger=False, enable_checkpointing=False,
                        callbacks=[writer], enable_model_summary=False)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=False)
    generator = BackGenerator(pipe, steps, guidance, args.num_points, strength)
    trainer.predict(generator, loader, return_predictions=False)
    if trainer.is_global_zero:
        print(f"wrote {len(writer.written)} scans to {args.out}" + (" (this rank)" if trainer.world_size > 1 else ""))
    return writer.written


if __name__ == "__main__":
    main()
