"""Interactive plotly views of backs: 3D scatter coloured by depth (z) with the spinal lines and
landmarks, several backs side by side in linked-style scenes, and a slider over a sweep of backs.

The camera looks at the back from the scanner (+z) with y up, so the subject's right (+x) is on the
right of the screen, as in the "back" view of :mod:`pcdiff.viz.static`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from pcdiff.data.sample import BackScan
from pcdiff.viz.inputs import CloudView, as_cloud_views, depth_range

LINE_COLORS = {"ESL": "red", "ISL": "orange", "spine": "magenta"}
DEPTH_COLORSCALE = "Viridis"
# Seen from the scanner: eye on +z, y up.
BACK_CAMERA = {"eye": {"x": 0.0, "y": 0.0, "z": 2.0}, "up": {"x": 0.0, "y": 1.0, "z": 0.0}}


def _panel_traces(panel: CloudView, point_size: float, units: str, showlegend: bool) -> list[go.Scatter3d]:
    """Traces of one panel: "points" (coloured by z through the shared colour axis), one per line, "landmarks"."""
    p = panel.points
    traces = [
        go.Scatter3d(
            x=p[:, 0], y=p[:, 1], z=p[:, 2], mode="markers", name="points",
            marker={"size": point_size, "color": p[:, 2], "coloraxis": "coloraxis"},
            hovertemplate=f"x %{{x:.1f}} {units}<br>y %{{y:.1f}} {units}<br>z %{{z:.1f}} {units}<extra></extra>",
            showlegend=False,
        )
    ]
    for label, line in panel.lines.items():
        traces.append(
            go.Scatter3d(
                x=line[:, 0], y=line[:, 1], z=line[:, 2], mode="lines", name=label,
                line={"color": LINE_COLORS.get(label, "black"), "width": 6},
                legendgroup=label, showlegend=showlegend,
            )
        )
    if panel.landmarks:
        names = list(panel.landmarks)
        lm = np.stack([panel.landmarks[k] for k in names])
        traces.append(
            go.Scatter3d(
                x=lm[:, 0], y=lm[:, 1], z=lm[:, 2], mode="markers+text", name="landmarks", text=names,
                marker={"size": 4, "color": "black", "symbol": "x"},
                legendgroup="landmarks", showlegend=showlegend,
            )
        )
    return traces


def _scene(units: str) -> dict[str, Any]:
    return {
        "aspectmode": "data",
        "camera": BACK_CAMERA,
        "xaxis": {"title": f"x [{units}]"},
        "yaxis": {"title": f"y [{units}]"},
        "zaxis": {"title": f"z [{units}]"},
    }


def scatter3d_figure(
    clouds: Sequence[BackScan | np.ndarray | Any],
    spines: Sequence[np.ndarray | None] | None = None,
    titles: Sequence[str] | None = None,
    units: str = "mm",
    center: str | None = None,
    point_size: float = 2.0,
    height: int = 550,
) -> go.Figure:
    """Side-by-side 3D scatter plots, one scene per cloud, points coloured by depth z on one shared scale.

    Args:
        clouds: BackScans or (N, 3) arrays/tensors (a (B, N, 3) batch is read as B clouds).
        spines: one (K, 3) polyline (or ``None``) per cloud, drawn as "spine"; BackScans without one
            show their own ESL and ISL. Landmarks of BackScans are always drawn.
        titles: one title per cloud.
        units: axis unit label ("mm" or "normalised").
        center: ``None``, ``"DM"`` or ``"centroid"``: move each cloud there first (see
            :func:`pcdiff.viz.inputs.as_cloud_views`).
        point_size: marker size in pixels.
        height: figure height in pixels.

    Returns:
        a ``plotly.graph_objects.Figure``; per panel the traces are "points", then one per line
        ("ESL", "ISL", "spine") and "landmarks" when present.
    """
    panels = as_cloud_views(clouds, spines, titles, center)
    n = len(panels)
    fig = make_subplots(
        rows=1, cols=n, specs=[[{"type": "scene"}] * n], subplot_titles=[p.title for p in panels],
        horizontal_spacing=0.02,
    )
    for i, panel in enumerate(panels):
        for trace in _panel_traces(panel, point_size, units, showlegend=i == 0):
            fig.add_trace(trace, row=1, col=i + 1)
    cmin, cmax = depth_range(panels)
    fig.update_layout(
        coloraxis={"colorscale": DEPTH_COLORSCALE, "cmin": cmin, "cmax": cmax, "colorbar": {"title": f"z [{units}]"}},
        height=height, width=None, margin={"l": 0, "r": 0, "t": 40, "b": 0},
    )
    fig.update_scenes(**_scene(units))
    return fig


def sweep_figure(
    clouds: Sequence[BackScan | np.ndarray | Any],
    labels: Sequence[str],
    spines: Sequence[np.ndarray | None] | None = None,
    units: str = "mm",
    center: str | None = None,
    point_size: float = 2.0,
    height: int = 600,
    slider_prefix: str = "",
) -> go.Figure:
    """One 3D scene with a slider stepping through ``clouds`` (e.g. a Cobb-angle sweep 0 -> 60 deg).

    Every step keeps the same axis ranges and depth colour scale, so that what changes is the back.

    Args:
        clouds: BackScans or (N, 3) arrays/tensors, one per slider step.
        labels: one slider label per cloud (e.g. "20 deg").
        spines, units, center, point_size: as in :func:`scatter3d_figure`.
        height: figure height in pixels.
        slider_prefix: text before the current label, e.g. "Cobb ".

    Returns:
        a figure with one plotly frame per cloud; the first cloud is shown initially.
    """
    panels = as_cloud_views(clouds, spines, labels, center)
    frames = [go.Frame(data=_panel_traces(p, point_size, units, showlegend=True), name=p.title) for p in panels]
    n_traces = {len(f.data) for f in frames}
    if len(n_traces) != 1:
        raise ValueError("sweep_figure: every cloud must carry the same lines and landmarks (the slider swaps traces one for one)")
    fig = go.Figure(data=frames[0].data, frames=frames)
    all_pts = np.concatenate([p.points for p in panels] + [l for p in panels for l in p.lines.values()])
    lo, hi = all_pts.min(axis=0), all_pts.max(axis=0)
    pad = 0.05 * (hi - lo)
    scene = _scene(units)
    for d, key in enumerate(("xaxis", "yaxis", "zaxis")):
        scene[key]["range"] = [float(lo[d] - pad[d]), float(hi[d] + pad[d])]
    # Fixed ranges: "manual" aspect proportional to the ranges keeps millimetres square across steps.
    extent = (hi - lo) + 2 * pad
    scene["aspectmode"] = "manual"
    scene["aspectratio"] = dict(zip("xyz", (extent / extent.max()).tolist()))
    cmin, cmax = depth_range(panels)
    steps = [
        {"method": "animate", "label": p.title,
         "args": [[p.title], {"mode": "immediate", "frame": {"duration": 0, "redraw": True}, "transition": {"duration": 0}}]}
        for p in panels
    ]
    fig.update_layout(
        scene=scene, height=height, margin={"l": 0, "r": 0, "t": 30, "b": 0},
        coloraxis={"colorscale": DEPTH_COLORSCALE, "cmin": cmin, "cmax": cmax, "colorbar": {"title": f"z [{units}]"}},
        sliders=[{"active": 0, "steps": steps, "currentvalue": {"prefix": slider_prefix}}],
    )
    return fig
