"""Bookkeeping shared by the benchmarks: where things are, the hardware and command of a run, timing, and
the one results writer (:func:`write_results`: JSON, plus Markdown when there is a table).
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "benchmarks" / "results"
DEFAULT_PCDARE = ROOT.parent / "shared" / "data" / "pcdare"


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
    """The command that started this process, as it could be pasted into a shell (``python -m benchmarks.x ...``
    for a module run)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    program = ["-m", spec.name.removesuffix(".__main__")] if spec is not None and spec.name else sys.argv[:1]
    return " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *program, *sys.argv[1:]])


@contextmanager
def timer() -> Iterator[dict[str, float]]:
    """``with timer() as t: ...`` then ``t["s"]`` holds the wall time in seconds."""
    out = {"s": float("nan")}
    start = time.perf_counter()
    try:
        yield out
    finally:
        out["s"] = time.perf_counter() - start



def finished_run(info: dict[str, Any], wall: float) -> dict[str, Any]:
    """The keys a benchmark's JSON starts with, read at its end: the command, ``info`` (:func:`hardware_info` taken at
    the start), the 1-min load average now and whether other jobs shared the CPU (:func:`machine_was_busy`), wall s."""
    load_end = [round(x, 2) for x in os.getloadavg()]
    busy = machine_was_busy([info.get("load_average_at_start", [0.0])[0], load_end[0]], info.get("cpu_count") or 1)
    return {"command": command_line(), "hardware": info, "load_average_at_end": load_end, "machine_was_busy": busy,
            "wall_s": wall}


def load_line(record: dict[str, Any], wall_format: str = ".1f") -> str:
    """The results files' closing sentence for a :func:`finished_run` record: loads at start and end, idle or not, wall."""
    info = record["hardware"]
    return (f"Load average at start {info.get('load_average_at_start')}, at end {record['load_average_at_end']} on "
            f"{info['cpu_count']} CPUs ({'shared with other jobs' if record['machine_was_busy'] else 'idle'});"
            f" wall {record['wall_s']:{wall_format}} s.")


def publish(stem: str, payload: dict[str, Any], markdown: str) -> int:
    """Write ``benchmarks/results/<stem>.{json,md}``, print the Markdown and the paths; exit status 0."""
    js, mdp = write_results(stem, payload, markdown)
    print(markdown)
    print(f"wrote {js} and {mdp}")
    return 0


def write_results(
    stem: str, payload: dict[str, Any], markdown: str | None, out_dir: Path = RESULTS_DIR, *, indent: int = 2
) -> tuple[Path, Path | None]:
    """Write ``out_dir/stem.json`` and, unless ``markdown`` is None, ``out_dir/stem.md``; returns both paths
    (None for a Markdown file not written). NumPy and torch numbers and arrays, and paths, are written as JSON values."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    js, md = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    js.write_text(json.dumps(payload, indent=indent, default=_json_default) + "\n", encoding="utf-8")
    if markdown is None:
        return js, None
    md.write_text(markdown if markdown.endswith("\n") else markdown + "\n", encoding="utf-8")
    return js, md


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return obj.item()
    if isinstance(obj, (np.ndarray, torch.Tensor)):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def labelled_path(spec: str, option: str, default_label: str | None = None) -> tuple[str, Path]:
    """``"LABEL=PATH"`` (or a bare ``PATH`` when ``default_label`` is given) -> (label, path), for the repeatable
    ``--option LABEL=PATH`` arguments of the benchmarks.

    Raises:
        ValueError: an empty label or path, or a bare path where no default label is allowed.
    """
    label, sep, path = spec.partition("=")
    if not sep:
        label, path = default_label or "", spec
    if not label or not path:
        raise ValueError(f"{option} takes LABEL=PATH" + (" or PATH" if default_label else "") + f", got {spec!r}")
    return label, Path(path)


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

