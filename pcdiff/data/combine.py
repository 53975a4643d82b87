"""Combine scan folders into one training folder, without copying a scan:
``python -m pcdiff.data.combine --out DIR phantoms=PHANTOM_DIR diffusion=BACKS_DIR --first diffusion=500``.

The data module reads one ``data_dir``. Training on phantoms and generated backs together (or real scans and
synthetic ones) needs one folder that holds both. This writes ``DIR/<label>/...`` with the source's folders made
and its files *linked* (symbolic links to the absolute source paths): the readers search folders with
``Path.rglob``, which does not descend into a linked folder, so each folder is made and only files are links.
Subjects whose names collide across sources (a phantom and the generated back for its spine) are told apart by
the reader, which names them by their folder path (``diffusion__phantom_s1_00000``).

Hand-written because no library here builds such a tree; a few lines of :mod:`pathlib`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path


def parse_labelled(spec: str, option: str) -> tuple[str, str]:
    """``"LABEL=VALUE"`` -> (label, value); raises ``ValueError`` naming ``option`` when either part is empty."""
    label, sep, value = spec.partition("=")
    if not sep or not label or not value:
        raise ValueError(f"{option} takes LABEL=VALUE, got {spec!r}")
    if "/" in label or label in (".", ".."):
        raise ValueError(f"{option}: the label {label!r} must be a plain folder name")
    return label, value


def combine_folders(out: Path | str, sources: Mapping[str, Path | str], first: Mapping[str, int] | None = None) -> dict[str, int]:
    """Write ``out/<label>/`` for each source: its folders made, its files linked.

    Args:
        out: the combined folder; must not exist or be empty (nothing of the user's is overwritten).
        sources: label -> source folder, each read in place.
        first: label -> keep only the first N entries of that source's top level (sorted by name: for the
            subject-per-folder layouts, the first N subjects). Other sources are linked whole.

    Returns:
        label -> number of files linked.

    Raises:
        FileNotFoundError: a source is not a folder.
        FileExistsError: ``out`` exists and is not an empty folder.
        ValueError: no source, ``first`` naming an unknown label or a count < 1, a source with no file.
    """
    out, first = Path(out), dict(first or {})
    if not sources:
        raise ValueError("combine_folders: give at least one LABEL=DIR source")
    unknown = sorted(set(first) - set(sources))
    if unknown:
        raise ValueError(f"--first names labels that are not sources: {unknown}")
    for label, n in first.items():
        if n < 1:
            raise ValueError(f"--first {label}={n}: the count must be >= 1")
    for label, src in sources.items():
        if not Path(src).is_dir():
            raise FileNotFoundError(f"source {label}={src} is not a folder")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not an empty folder; choose a new --out")
    files = {label: _source_files(Path(src).resolve(), first.get(label)) for label, src in sources.items()}
    for label, found in files.items():  # every source checked before the first link is written
        if not found:
            raise ValueError(f"source {label}={sources[label]} holds no file")
    for label, found in files.items():
        root = Path(sources[label]).resolve()
        for f in found:
            link = out / label / f.relative_to(root)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(f)
    return {label: len(found) for label, found in files.items()}


def _source_files(src: Path, first: int | None) -> list[Path]:
    """The files under ``src`` (absolute), from its first ``first`` top-level entries by name (all when None)."""
    entries = sorted(src.iterdir(), key=lambda p: p.name)[:first]
    return [p for e in entries for p in ([e] if e.is_file() else sorted(e.rglob("*"))) if p.is_file()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pcdiff.data.combine", description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", metavar="LABEL=DIR", help="a scan folder and the subfolder name it gets")
    parser.add_argument("--out", type=Path, required=True, help="the combined folder (new or empty)")
    parser.add_argument("--first", action="append", default=[], metavar="LABEL=N",
                        help="keep only the first N top-level entries (subjects) of that source; repeatable")
    args = parser.parse_args(argv)
    try:
        sources = dict(parse_labelled(s, "a source") for s in args.sources)
        if len(sources) != len(args.sources):
            raise ValueError("each source needs its own label")
        first = {}
        for label, n in (parse_labelled(s, "--first") for s in args.first):
            if not n.isdigit():
                raise ValueError(f"--first {label}={n}: the count must be a whole number")
            first[label] = int(n)
        counts = combine_folders(args.out, {k: Path(v) for k, v in sources.items()}, first)
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        parser.error(str(exc))
    print(json.dumps({"out": str(args.out), "files": counts}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
