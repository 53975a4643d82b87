"""Static matplotlib renders of backs: README figures and images logged during training.

Everything draws on a ``matplotlib.figure.Figure`` attached to an Agg canvas, never through
``pyplot``, so it runs headless (no display, no global backend switch) and is safe inside a
training loop. Each cloud gets one panel per view, all panels of a view share the same axis
limits (comparisons are at one scale) and the points of every panel share one depth (z) colour scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from pcdiff.data.sample import BackScan
from pcdiff.viz.inputs import CloudView, as_cloud_views, depth_range

# view name -> (horizontal axis index, vertical axis index, axis labels, title)
VIEWS: dict[str, tuple[int, int, tuple[str, str], str]] = {
    "back": (0, 1, ("x (+ subject's right)", "y (up)"), "back"),
    "side": (2, 1, ("z (towards scanner)", "y (up)"), "side, from the left"),
    "top": (0, 2, ("x (+ subject's right)", "z (towards scanner)"), "top"),
}
LINE_STYLES: dict[str, dict[str, Any]] = {
    "ESL": {"color": "tab:red", "linewidth": 1.6, "label": "ESL"},
    "ISL": {"color": "tab:orange", "linewidth": 1.6, "linestyle": "--", "label": "ISL"},
    "spine": {"color": "magenta", "linewidth": 1.2, "marker": "o", "markersize": 2.5, "label": "spine"},
}
DEPTH_CMAP = "viridis"


def _check_views(views: Sequence[str]) -> tuple[str, ...]:
    if isinstance(views, str):
        views = (views,)
    views = tuple(views)
    unknown = [v for v in views if v not in VIEWS]
    if not views or unknown:
        raise ValueError(f"views: expected a non-empty subset of {sorted(VIEWS)}, got {list(views)}")
    return views


def _limits(panels: Sequence[CloudView], axis: int) -> tuple[float, float]:
    """Shared (lo, hi) of one coordinate over all points and lines, padded by 5%."""
    values = [p.points[:, axis] for p in panels] + [line[:, axis] for p in panels for line in p.lines.values()]
    values += [np.array([lm[axis]]) for p in panels for lm in p.landmarks.values()]
    v = np.concatenate(values)
    lo, hi = float(v.min()), float(v.max())
    pad = 0.05 * (hi - lo) if hi > lo else 1.0
    return lo - pad, hi + pad


def point_cloud_figure(
    clouds: Sequence[BackScan | np.ndarray | Any],
    spines: Sequence[np.ndarray | None] | None = None,
    titles: Sequence[str] | None = None,
    views: Sequence[str] = ("back", "side"),
    units: str = "mm",
    center: str | None = None,
    share_limits: bool = True,
    clouds_per_row: int | None = None,
    panel_height: float = 4.0,
    point_size: float | None = None,
    dpi: int = 100,
    colorbar: bool = True,
) -> Figure:
    """Draw each cloud in each view, points coloured by depth z, spinal lines and landmarks on top.

    Args:
        clouds: BackScans or (N, 3) point arrays/tensors (a (B, N, 3) batch is read as B clouds), in
            millimetres or normalised coordinates (say which with ``units``).
        spines: one (K, 3) polyline (or ``None``) per cloud, e.g. the conditioning keypoints; BackScans
            without one show their own ESL and ISL.
        titles: one title per cloud.
        views: any of "back" (x-y, seen from the scanner), "side" (z-y) and "top" (x-z).
        units: axis unit label ("mm" or "normalised").
        center: ``None``, ``"DM"`` or ``"centroid"``: move each cloud there first (see
            :func:`pcdiff.viz.inputs.as_cloud_views`).
        share_limits: one set of axis limits and one depth colour scale for all panels (comparisons at
            one scale); ``False`` scales each panel to its own cloud (and draws no colour bar), e.g. when
            one cloud has far outliers that would shrink the others to a dot.
        clouds_per_row: wrap after this many clouds (default: all in one row).
        panel_height: height in inches of one row of panels.
        point_size: marker area in points^2 (default: from the number of points).
        dpi: resolution of the canvas.
        colorbar: draw the shared depth colour bar.

    Returns:
        a ``Figure`` attached to an Agg canvas (headless).
    """
    panels = as_cloud_views(clouds, spines, titles, center)
    views = _check_views(views)
    per_row = len(panels) if clouds_per_row is None else clouds_per_row
    if per_row < 1:
        raise ValueError(f"clouds_per_row must be >= 1, got {clouds_per_row}")
    n_rows = -(-len(panels) // per_row)
    limits = {axis: _limits(panels, axis) for axis in range(3)}  # shared: sizes the panels too
    # Panel width relative to the row height (the y extent): with equal aspect, back and side panels
    # fill their cells, and a top view (vertical axis z) is as wide as the back and shorter.
    y_extent = limits[1][1] - limits[1][0]
    ratios = [(limits[VIEWS[v][0]][1] - limits[VIEWS[v][0]][0]) / y_extent for v in views]
    colorbar = colorbar and share_limits
    width_ratios = ratios * per_row + ([0.06] if colorbar else [])
    # 0.6 in per panel leaves room for the y tick labels.
    fig = Figure(figsize=(panel_height * sum(width_ratios) + 0.6 * per_row * len(views), panel_height * n_rows), dpi=dpi)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(n_rows, len(width_ratios), width_ratios=width_ratios)
    norm = Normalize(*depth_range(panels))

    for i, panel in enumerate(panels):
        row, col0 = divmod(i, per_row)
        n = len(panel.points)
        size = point_size if point_size is not None else float(np.clip(4000.0 / n, 0.3, 8.0))
        if not share_limits:
            limits = {axis: _limits([panel], axis) for axis in range(3)}
            norm = Normalize(*depth_range([panel]))
        for j, view in enumerate(views):
            h, v, (xlabel, ylabel), view_title = VIEWS[view]
            ax = fig.add_subplot(grid[row, col0 * len(views) + j])
            # Draw far points first so that the nearest (largest z) are on top in the back view.
            order = np.argsort(panel.points[:, 2]) if view == "back" else np.arange(n)
            pts = panel.points[order]
            ax.scatter(pts[:, h], pts[:, v], c=pts[:, 2], cmap=DEPTH_CMAP, norm=norm, s=size, linewidths=0, rasterized=True)
            for label, line in panel.lines.items():
                ax.plot(line[:, h], line[:, v], **LINE_STYLES.get(label, {"color": "black", "label": label}))
            for name, lm in panel.landmarks.items():
                ax.plot(lm[h], lm[v], marker="x", color="black", markersize=5, linestyle="none")
                if view == "back":
                    ax.annotate(name, (lm[h], lm[v]), xytext=(3, 3), textcoords="offset points", fontsize=7)
            ax.set_xlim(*limits[h])
            ax.set_ylim(*limits[v])
            ax.set_aspect("equal", adjustable="box")
            ax.set_title(f"{panel.title}\n{view_title}" if j == 0 else view_title, fontsize=9)
            ax.set_xlabel(f"{xlabel} [{units}]", fontsize=7)
            ax.set_ylabel(f"{ylabel} [{units}]", fontsize=7)
            ax.tick_params(labelsize=6)
            if i == 0 and j == 0 and panel.lines:
                ax.legend(fontsize=6, loc="lower right")
    if colorbar:
        cax = fig.add_subplot(grid[:, -1])
        fig.colorbar(ScalarMappable(norm=norm, cmap=DEPTH_CMAP), cax=cax, label=f"depth z [{units}]")
    fig.tight_layout()
    return fig


def figure_to_array(fig: Figure) -> np.ndarray:
    """Rasterise ``fig`` on its Agg canvas and return it as an (H, W, 3) uint8 RGB image."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def render_point_clouds(
    clouds: Sequence[BackScan | np.ndarray | Any],
    spines: Sequence[np.ndarray | None] | None = None,
    titles: Sequence[str] | None = None,
    views: Sequence[str] = ("back", "side"),
    **kwargs: Any,
) -> np.ndarray:
    """Render clouds to an (H, W, 3) uint8 RGB image, e.g. for ``logger.experiment.add_image(tag, img,
    dataformats="HWC")``. Arguments as in :func:`point_cloud_figure`."""
    return figure_to_array(point_cloud_figure(clouds, spines, titles, views, **kwargs))


def save_point_cloud_figure(
    path: str | Path,
    clouds: Sequence[BackScan | np.ndarray | Any],
    spines: Sequence[np.ndarray | None] | None = None,
    titles: Sequence[str] | None = None,
    views: Sequence[str] = ("back", "side"),
    **kwargs: Any,
) -> Path:
    """Write the figure of :func:`point_cloud_figure` to ``path`` (format from the suffix: .png, .pdf,
    .svg...), creating parent folders. Returns the path."""
    path = Path(path)
    if not path.suffix:
        raise ValueError(f"{path}: give a file suffix (.png, .pdf, .svg) so that the format is known")
    path.parent.mkdir(parents=True, exist_ok=True)
    point_cloud_figure(clouds, spines, titles, views, **kwargs).savefig(path, bbox_inches="tight")
    return path
