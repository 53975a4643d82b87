"""Lightning data module: back scans -> normalised, resampled, cached tensors, split by subject.

``prepare_data`` reads the folder (4D-Spine, generic or PCdare layout; or generates the phantom
set into a cache when ``data_dir`` is None), applies the deterministic preprocessing
(:func:`pcdiff.data.transforms.default_preprocess`, seeded per subject) and caches the result as a
plain ``.npz`` (no pickles; loads with ``allow_pickle=False``) keyed by a hash of the data folder's
file names, sizes and mtimes and of the settings. ``setup`` loads that cache and splits **by
subject** (``meta["subject"]`` when a subject has several scans, else the scan name); training
augmentation is drawn on the fly, so augmented copies of one subject never straddle splits.

Batches are dicts::

    points         (B, N, 3) float32  normalised scan points
    spine          (B, K, 3) float32  keypoints of the chosen line, top -> bottom, equal arc length
    landmarks      (B, 4, 3) float32  C7, DL, DR, DM normalised (NaN rows where a scan has none)
    has_landmarks  (B,) bool
    center         (B, 3) float32     mm
    scale          (B,) float32       mm; x_mm = x_normalised * scale + center
    name           list[str]

The user's data folder is only ever read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from pcdiff.data.readers.base import InvalidScanError, ScanList
from pcdiff.data.readers.dataset import read_dataset
from pcdiff.data.transforms import default_augment, default_preprocess, scan_to_sample
from pcdiff.geometry.frames import Normalization, check_normalization

logger = logging.getLogger(__name__)

#: Bump when the cached arrays change meaning, to invalidate old caches.
CACHE_VERSION = 1
ARRAY_KEYS = ("points", "spine", "landmarks", "has_landmarks", "center", "scale")
#: Augmentation jitter in mm, converted to the sample's units (normalised ~ 1 / 450 mm per unit).
JITTER_MM = 1.0
TYPICAL_SPINE_MM = 450.0


def stack_samples(rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Stack preprocessed samples into the arrays the cache stores.

    Returns ``points`` (S, N, 3), ``spine`` (S, K, 3), ``landmarks`` (S, 4, 3), ``has_landmarks`` (S,),
    ``center`` (S, 3) mm and ``scale`` (S,) mm, float32 (bool for ``has_landmarks``).
    """
    return {
        "points": np.stack([r["points"] for r in rows]).astype(np.float32),
        "spine": np.stack([r["spine"] for r in rows]).astype(np.float32),
        "landmarks": np.stack([r["landmarks"] for r in rows]).astype(np.float32),
        "has_landmarks": np.array([r["has_landmarks"] for r in rows], dtype=bool),
        "center": np.stack([r["center"] for r in rows]).astype(np.float32),
        "scale": np.array([r["scale"] for r in rows], dtype=np.float32),
    }


def default_cache_dir() -> Path:
    """``$PCDIFF_CACHE`` or ``~/.cache/pcdiff``."""
    return Path(os.environ.get("PCDIFF_CACHE", Path.home() / ".cache" / "pcdiff"))


def folder_fingerprint(root: Path) -> str:
    """SHA-1 over every file's relative path, size and mtime under ``root`` (contents are not read)."""
    h = hashlib.sha1()
    for p in sorted(Path(root).rglob("*")):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _phantom_source_hash() -> str:
    """Hash of the phantom generator's source, so a changed generator regenerates the cached set."""
    h = hashlib.sha1()
    here = Path(__file__).resolve().parent
    for p in sorted([*(here / "phantom").rglob("*.py"), here / "synth.py"]):
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()[:10]


class BackScanDataset(Dataset):
    """Cached, preprocessed samples; draws training augmentation on the fly.

    The augmentation generator is seeded from torch's RNG (seeded by ``lightning.seed_everything``
    and per DataLoader worker), so runs are reproducible and every epoch draws new augmentations.
    """

    def __init__(self, arrays: dict[str, np.ndarray], names: list[str], index: np.ndarray, augment=None) -> None:
        self.arrays, self.names, self.index, self.augment = arrays, names, np.asarray(index, dtype=np.int64), augment

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, Any]:
        j = int(self.index[i])
        sample: dict[str, Any] = {k: self.arrays[k][j] for k in ARRAY_KEYS}
        sample["name"] = self.names[j]
        if self.augment is not None:
            rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))
            sample = self.augment(sample, rng)
        out = {k: torch.as_tensor(np.asarray(sample[k])) for k in ARRAY_KEYS}
        out["scale"] = out["scale"].float()
        out["name"] = sample["name"]
        return out


class BackScanDataModule(L.LightningDataModule):
    """Back scans for spine-conditioned point-cloud diffusion.

    Args:
        data_dir: data folder; None -> the phantom set (``phantom_num_scans`` scans, seed
            ``phantom_seed``) generated into ``cache_dir`` on first use.
        layout: ``"auto"``, ``"4dspine"``, ``"generic"`` or ``"pcdare"``.
        num_points: N points per scan after resampling.
        num_keypoints: K keypoints of the conditioning line.
        line: conditioning line, ``"esl"`` or ``"isl"``; also defines the ``"line"`` frame.
        sampling: ``"random"`` or ``"fps"``.
        normalize: one of :data:`pcdiff.geometry.frames.NORMALIZATIONS`: ``"line"`` (centre = middle of
            the line's ends, scale = their distance), ``"landmarks"`` (C7..DM), ``"fixed"`` (the line's
            centre, scale ``fixed_scale`` mm), ``"center"`` (the line's centre, units stay mm) or ``"none"`` (mm).
        fixed_scale: the scale in mm of ``normalize="fixed"`` (given exactly then).
        augment: rotate about y (+-``max_rotation_deg``), scale (0.95-1.05) and jitter (~1 mm) training samples.
        max_rotation_deg: the largest augmentation turn about the vertical axis (deg; 0: none). A turn about y
            tilts the whole back left-right, a twist of the size of a rib hump that the line barely shows.
        batch_size, num_workers: DataLoader settings.
        val_fraction, test_fraction: fractions of *subjects* held out (ignored with explicit keys).
        train_keys, val_keys, test_keys: explicit subject keys; any given -> fractions unused and
            unlisted subjects go to train when ``train_keys`` is None.
        seed: split and resampling seed.
        cache_dir: cache folder (default ``$PCDIFF_CACHE`` or ``~/.cache/pcdiff``).
        skip_invalid: skip (and report) bad subjects instead of failing.
        phantom_num_scans, phantom_seed: the default phantom set.
    """

    def __init__(
        self,
        data_dir: str | None = None,
        layout: Literal["auto", "4dspine", "generic", "pcdare"] = "auto",
        num_points: int = 2048,
        num_keypoints: int = 32,
        line: Literal["esl", "isl"] = "esl",
        sampling: Literal["random", "fps"] = "random",
        normalize: Normalization = "line",
        fixed_scale: float | None = None,
        augment: bool = True,
        max_rotation_deg: float = 10.0,
        batch_size: int = 16,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        train_keys: list[str] | None = None,
        val_keys: list[str] | None = None,
        test_keys: list[str] | None = None,
        seed: int = 0,
        cache_dir: str | None = None,
        skip_invalid: bool = False,
        phantom_num_scans: int = 200,
        phantom_seed: int = 0,
    ) -> None:
        super().__init__()
        if line not in ("esl", "isl"):
            raise ValueError(f"line must be 'esl' or 'isl', got {line!r}")
        check_normalization(normalize, fixed_scale, who="data")
        if sampling not in ("random", "fps"):
            raise ValueError(f"sampling must be 'random' or 'fps', got {sampling!r}")
        if layout not in ("auto", "4dspine", "generic", "pcdare"):
            raise ValueError(f"layout must be 'auto', '4dspine', 'generic' or 'pcdare', got {layout!r}")
        if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
            raise ValueError(f"need 0 <= val_fraction, test_fraction and their sum < 1, got {val_fraction}, {test_fraction}")
        least = {"num_points": (num_points, 1), "num_keypoints": (num_keypoints, 2), "batch_size": (batch_size, 1),
                 "num_workers": (num_workers, 0), "phantom_num_scans": (phantom_num_scans, 1)}  # fmt: skip
        for name, (value, minimum) in least.items():
            if value < minimum:
                raise ValueError(f"data.{name} must be >= {minimum}, got {value}")
        if not 0.0 <= max_rotation_deg <= 180.0:
            raise ValueError(f"data.max_rotation_deg must lie in [0, 180], got {max_rotation_deg}")
        self.save_hyperparameters()
        self.data_dir = None if data_dir is None else Path(data_dir)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.preprocess = default_preprocess(num_points, num_keypoints, line, sampling, normalize, fixed_scale)
        mm_per_unit = {"fixed": fixed_scale, "center": 1.0, "none": 1.0}.get(normalize, TYPICAL_SPINE_MM)
        jitter = JITTER_MM / mm_per_unit
        self.augment = (default_augment(max_rotation_deg, jitter_sigma=jitter, jitter_clip=3 * jitter)
                        if augment else None)
        self.skipped: list[tuple[Path, str]] = []
        self.splits: dict[str, list[str]] = {}
        self._arrays: dict[str, np.ndarray] | None = None
        self._names: list[str] = []
        self._subjects: list[str] = []

    # ------------------------------------------------------------------ data folder and cache

    def resolve_data_dir(self) -> Path:
        """The data folder, generating the default phantom set into the cache when needed."""
        if self.data_dir is not None:
            if not self.data_dir.is_dir():
                what = "is a file, not a folder of scans" if self.data_dir.exists() else "does not exist"
                raise FileNotFoundError(f"data_dir {self.data_dir} {what}")
            return self.data_dir
        hp = self.hparams
        num = max(4096, hp.num_points)
        out = self.cache_dir / f"phantom-n{hp.phantom_num_scans}-s{hp.phantom_seed}-p{num}-{_phantom_source_hash()}"
        if not (out / ".complete").is_file():
            from pcdiff.data.synth import write_phantom_dataset

            tmp = out.with_name(out.name + f".tmp{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)  # our own leftover from a crashed run
            logger.info("generating %d phantom scans into %s", hp.phantom_num_scans, out)
            write_phantom_dataset(tmp, hp.phantom_num_scans, hp.phantom_seed, num_points=num)
            (tmp / ".complete").write_text("ok\n")
            if out.exists():  # another process finished first
                shutil.rmtree(tmp)
            else:
                os.replace(tmp, out)
        return out

    def cache_key(self, data_dir: Path) -> str:
        hp = self.hparams
        settings = {
            "version": CACHE_VERSION,
            "layout": hp.layout,
            "num_points": hp.num_points,
            "num_keypoints": hp.num_keypoints,
            "line": hp.line,
            "sampling": hp.sampling,
            "normalize": hp.normalize,
            **({"fixed_scale": hp.fixed_scale} if hp.get("fixed_scale") is not None else {}),  # keeps older keys
            "seed": hp.seed,
            "skip_invalid": hp.skip_invalid,
            "data": folder_fingerprint(data_dir),
            "root": str(data_dir.resolve()),
        }
        return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]

    def cache_path(self) -> Path:
        data_dir = self.resolve_data_dir()
        return self.cache_dir / "preprocessed" / f"{data_dir.name}-{self.cache_key(data_dir)}.npz"

    def prepare_data(self) -> None:
        """Read, preprocess and cache (once); nothing happens when the cache is current."""
        path = self.cache_path()
        if path.is_file():
            return
        data_dir = self.resolve_data_dir()
        scans = read_dataset(data_dir, layout=self.hparams.layout, skip_invalid=self.hparams.skip_invalid)
        arrays, names, subjects, skipped = self._preprocess(scans)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + f".tmp{os.getpid()}.npz")
        np.savez(
            tmp,
            **arrays,
            names=np.array(names, dtype=str),
            subjects=np.array(subjects, dtype=str),
            skipped=np.array([f"{p}: {r}" for p, r in skipped], dtype=str),
        )
        os.replace(tmp, path)
        logger.info("cached %d preprocessed scans in %s", len(names), path)

    def _preprocess(self, scans: ScanList):
        skipped = list(scans.skipped)
        rows: list[dict[str, Any]] = []
        names: list[str] = []
        subjects: list[str] = []
        for scan in scans:
            # One generator per subject from (seed, name): a subject's result does not depend on the others.
            rng = np.random.default_rng([self.hparams.seed, int(hashlib.sha1(scan.name.encode()).hexdigest()[:8], 16)])
            try:
                sample = self.preprocess(scan_to_sample(scan), rng)
            except ValueError as exc:
                err = InvalidScanError(scan.meta.get("source", scan.name), str(exc))
                if not self.hparams.skip_invalid:
                    raise err from exc
                logger.warning("skipping invalid subject: %s", err)
                skipped.append((err.path, err.reason))
                continue
            rows.append(sample)
            names.append(scan.name)
            subjects.append(str(scan.meta.get("subject", scan.name)))
        if skipped:
            logger.warning("skipped %d of %d subjects as invalid:\n%s", len(skipped), len(rows) + len(skipped),
                           "\n".join(f"  {p}: {r}" for p, r in skipped))
        if not rows:
            raise ValueError("no subject could be preprocessed")
        return stack_samples(rows), names, subjects, skipped

    # ------------------------------------------------------------------ splits and loaders

    def setup(self, stage: str | None = None) -> None:
        if self._arrays is not None:
            return
        path = self.cache_path()
        if not path.is_file():
            self.prepare_data()
        with np.load(path, allow_pickle=False) as data:
            self._arrays = {k: data[k] for k in ARRAY_KEYS}
            self._names = data["names"].tolist()
            self._subjects = data["subjects"].tolist()
            self.skipped = [tuple(s.split(": ", 1)) for s in data["skipped"].tolist()]
        if self.skipped:
            logger.warning("%d invalid subjects were skipped when the cache was built", len(self.skipped))
        self.splits = self._split()

    def _split(self) -> dict[str, list[str]]:
        """Subject keys per split (sorted); every scan of a subject lands in the same split."""
        hp = self.hparams
        subjects = sorted(set(self._subjects))
        if hp.train_keys is None and hp.val_keys is None and hp.test_keys is None:
            perm = np.random.default_rng(hp.seed).permutation(len(subjects))
            n_test = int(round(hp.test_fraction * len(subjects)))
            n_val = int(round(hp.val_fraction * len(subjects)))
            if len(subjects) - n_test - n_val < 1:
                raise ValueError(f"only {len(subjects)} subjects: nothing left to train on after the val/test split")
            shuffled = [subjects[i] for i in perm]
            return {
                "test": sorted(shuffled[:n_test]),
                "val": sorted(shuffled[n_test : n_test + n_val]),
                "train": sorted(shuffled[n_test + n_val :]),
            }
        known = set(subjects)
        given = {s: list(k) for s, k in (("train", hp.train_keys), ("val", hp.val_keys), ("test", hp.test_keys)) if k}
        for split, keys in given.items():
            unknown = sorted(set(keys) - known)
            if unknown:
                raise ValueError(f"{split}_keys not in the data: {unknown[:10]} (known e.g. {subjects[:5]})")
        splits = ["train", "val", "test"]
        for i, a in enumerate(splits):
            for b in splits[i + 1 :]:
                both = set(given.get(a, ())) & set(given.get(b, ()))
                if both:
                    raise ValueError(f"subjects in both {a}_keys and {b}_keys: {sorted(both)[:10]}")
        if hp.train_keys is None:
            given["train"] = sorted(known - set(given.get("val", ())) - set(given.get("test", ())))
        return {s: sorted(given.get(s, [])) for s in splits}

    def dataset(self, split: str) -> BackScanDataset:
        """The ``"train"``, ``"val"`` or ``"test"`` dataset (augmented only for train)."""
        if self._arrays is None:
            self.setup()
        keys = set(self.splits[split])
        index = np.array([i for i, s in enumerate(self._subjects) if s in keys], dtype=np.int64)
        return BackScanDataset(self._arrays, self._names, index, self.augment if split == "train" else None)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        ds = self.dataset(split)
        if len(ds) == 0:
            raise ValueError(f"the {split} split is empty (set {split}_fraction or {split}_keys)")
        return DataLoader(
            ds,
            batch_size=self.hparams.batch_size,
            shuffle=shuffle,
            num_workers=self.hparams.num_workers,
            persistent_workers=self.hparams.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
