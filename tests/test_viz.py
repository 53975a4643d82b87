"""pcdiff.viz: rendered arrays, plotly traces, depth colouring and input checks (all tiny and fast)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pcdiff.data.sample import BackScan
from pcdiff.viz import (
    point_cloud_figure,
    render_point_clouds,
    save_point_cloud_figure,
    scatter3d_figure,
    sweep_figure,
)


def _scan(seed: int, n: int = 300, name: str | None = None) -> BackScan:
    """A curved sheet with an S-shaped ESL, an ISL 60 mm in front and the four landmarks (mm)."""
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(-150, 150, n), rng.uniform(0, 450, n)
    z = -0.002 * x**2 + 5 * seed
    t = np.linspace(0, 1, 30)
    esl = np.stack([10 * seed * np.sin(2 * np.pi * t), 450 * (1 - t), np.zeros_like(t)], axis=1)
    return BackScan(
        name=name or f"scan{seed}",
        points=np.stack([x, y, z], axis=1),
        esl=esl,
        isl=esl + [0.0, 0.0, -60.0],
        landmarks={"C7": esl[0], "DL": [-40.0, 20.0, 0.0], "DR": [40.0, 20.0, 0.0]},
    )


def test_render_returns_rgb_uint8_growing_with_clouds():
    one = render_point_clouds([_scan(0)])
    three = render_point_clouds([_scan(0), _scan(1), _scan(2)])
    for img in (one, three):
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert three.shape[0] == one.shape[0] and three.shape[1] > 2 * one.shape[1]
    # Wrapping two clouds per row puts the third on a second row.
    wrapped = render_point_clouds([_scan(0), _scan(1), _scan(2)], clouds_per_row=2)
    assert wrapped.shape[0] > 1.5 * one.shape[0]
    # Something was drawn: not a blank canvas, and different clouds give different pixels.
    assert (one < 250).any(axis=2).mean() > 0.02
    assert not np.array_equal(render_point_clouds([_scan(1)]), one)


def test_static_views_project_the_right_axes_and_colour_by_depth():
    scan = _scan(3)
    fig = point_cloud_figure([scan], views=("back", "side", "top"), colorbar=False)
    back, side, top = fig.axes
    p = scan.points
    for ax, (h, v) in ((back, (0, 1)), (side, (2, 1)), (top, (0, 2))):
        scatter = ax.collections[0]
        offsets = np.asarray(scatter.get_offsets())
        order = np.lexsort((offsets[:, 1], offsets[:, 0]))
        expected = p[:, [h, v]]
        np.testing.assert_allclose(offsets[order], expected[np.lexsort((expected[:, 1], expected[:, 0]))], atol=1e-4)
        np.testing.assert_allclose(np.sort(scatter.get_array()), np.sort(p[:, 2]), atol=1e-4)
    labels = {line.get_label() for line in back.lines}
    assert {"ESL", "ISL"} <= labels
    # One depth scale for every panel: the colour limits span all clouds' z.
    fig2 = point_cloud_figure([_scan(0), _scan(4)], colorbar=False)
    lo = min(_scan(0).points[:, 2].min(), _scan(4).points[:, 2].min())
    hi = max(_scan(0).points[:, 2].max(), _scan(4).points[:, 2].max())
    for ax in fig2.axes:
        assert ax.collections[0].norm.vmin == pytest.approx(lo) and ax.collections[0].norm.vmax == pytest.approx(hi)


def test_arrays_tensors_and_batches_with_spines():
    scan = _scan(1)
    batch = torch.from_numpy(np.stack([scan.points, scan.points + 1.0])).requires_grad_(True)  # (B, N, 3)
    spines = [torch.from_numpy(scan.esl), None]
    img = render_point_clouds(batch, spines=spines, titles=["a", "b"], views=("back",), units="normalised")
    assert img.dtype == np.uint8 and img.shape[2] == 3
    fig = scatter3d_figure(batch, spines=spines)
    assert [t.name for t in fig.data] == ["points", "spine", "points"]


def test_plotly_traces_and_depth_colouring():
    scans = [_scan(0), _scan(2)]
    fig = scatter3d_figure(scans, titles=["real", "generated"])
    assert [t.name for t in fig.data] == ["points", "ESL", "ISL", "landmarks"] * 2
    assert [a.text for a in fig.layout.annotations] == ["real", "generated"]
    for k, scan in enumerate(scans):
        points = fig.data[4 * k]
        np.testing.assert_allclose(np.asarray(points.marker.color), scan.points[:, 2], atol=1e-4)
        assert points.marker.coloraxis == "coloraxis"
        np.testing.assert_allclose(np.asarray(fig.data[4 * k + 1].x), scan.esl[:, 0], atol=1e-4)
        assert list(fig.data[4 * k + 3].text) == ["C7", "DL", "DR", "DM"]
    z = np.concatenate([s.points[:, 2] for s in scans])
    assert fig.layout.coloraxis.cmin == pytest.approx(z.min()) and fig.layout.coloraxis.cmax == pytest.approx(z.max())
    assert fig.layout.scene.camera.up.y == 1 and fig.layout.scene2.aspectmode == "data"


def test_sweep_figure_has_one_frame_per_step_and_fixed_ranges():
    scans = [_scan(s) for s in range(4)]
    fig = sweep_figure(scans, labels=[f"{10 * s} deg" for s in range(4)], slider_prefix="Cobb ")
    assert [f.name for f in fig.frames] == ["0 deg", "10 deg", "20 deg", "30 deg"]
    assert len(fig.layout.sliders[0].steps) == 4
    lo = min(s.points[:, 0].min() for s in scans)
    assert fig.layout.scene.xaxis.range[0] < lo
    with pytest.raises(ValueError, match="same lines"):
        sweep_figure([_scan(0), _scan(1).points], labels=["a", "b"])


def test_save_point_cloud_figure(tmp_path):
    out = save_point_cloud_figure(tmp_path / "sub" / "backs.png", [_scan(0), _scan(1)])
    assert out.exists() and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert save_point_cloud_figure(tmp_path / "backs.pdf", [_scan(0)]).read_bytes()[:4] == b"%PDF"
    with pytest.raises(ValueError, match="suffix"):
        save_point_cloud_figure(tmp_path / "backs", [_scan(0)])


@pytest.mark.parametrize(
    "clouds, kwargs, match",
    [
        ([np.zeros((10, 2))], {}, r"clouds\[0\].*\(N, 3\)"),
        ([np.zeros((10, 3, 1))], {}, r"clouds\[0\].*\(N, 3\)"),
        ([np.zeros((0, 3))], {}, r"N >= 1"),
        ([np.full((10, 3), np.nan)], {}, "NaN"),
        (np.zeros((10, 3)), {}, "single cloud"),
        ([], {}, "at least one"),
        ([np.zeros((10, 3))], {"spines": [None, None]}, "one polyline"),
        ([np.zeros((10, 3))], {"spines": [np.zeros((5, 2))]}, r"spines\[0\]"),
        ([np.zeros((10, 3))], {"titles": ["a", "b"]}, "one title"),
        ([np.zeros((10, 3))], {"views": ("back", "front")}, "views"),
    ],
)
def test_bad_inputs_raise(clouds, kwargs, match):
    with pytest.raises(ValueError, match=match):
        render_point_clouds(clouds, **kwargs)
    if "views" not in kwargs:
        with pytest.raises(ValueError, match=match):
            scatter3d_figure(clouds, **kwargs)


def test_center_moves_points_lines_and_landmarks_together():
    scan = _scan(2)
    far = BackScan(
        name="far", points=scan.points + [0.0, -200.0, -1100.0], esl=scan.esl + [0.0, -200.0, -1100.0],
        landmarks={k: v + np.array([0.0, -200.0, -1100.0]) for k, v in scan.landmarks.items()},
    )
    fig = scatter3d_figure([scan, far], center="DM")
    dm = scan.landmarks["DM"]
    np.testing.assert_allclose(np.asarray(fig.data[0].x), scan.points[:, 0] - dm[0], atol=1e-3)
    far_points = next(t for t in fig.data[4:] if t.name == "points")
    np.testing.assert_allclose(np.asarray(far_points.z), scan.points[:, 2] - dm[2], atol=1e-3)
    esl = next(t for t in fig.data[4:] if t.name == "ESL")
    np.testing.assert_allclose(np.asarray(esl.y), scan.esl[:, 1] - dm[1], atol=1e-3)
    landmarks = fig.data[-1]
    np.testing.assert_allclose([landmarks.x[-1], landmarks.y[-1], landmarks.z[-1]], [0.0, 0.0, 0.0], atol=1e-3)
    centred = point_cloud_figure([np.asarray(far.points)], center="centroid", colorbar=False)
    np.testing.assert_allclose(np.asarray(centred.axes[0].collections[0].get_offsets()).mean(axis=0), 0.0, atol=1e-2)
    with pytest.raises(ValueError, match="no DM landmark"):
        render_point_clouds([scan.points], center="DM")
    with pytest.raises(ValueError, match="center"):
        render_point_clouds([scan], center="C7")


def test_share_limits_false_scales_each_panel_to_its_cloud():
    small, huge = _scan(0), _scan(1).points * 100.0
    shared = point_cloud_figure([small, huge], views=("back",))
    own = point_cloud_figure([small, huge], views=("back",), share_limits=False)
    assert len(shared.axes) == 3 and len(own.axes) == 2  # no colour bar without a shared scale
    assert shared.axes[0].get_xlim() == shared.axes[1].get_xlim()
    lo, hi = own.axes[0].get_xlim()
    assert lo < small.points[:, 0].min() and hi > small.points[:, 0].max() and hi - lo < 2 * np.ptp(small.points[:, 0])
    assert own.axes[0].collections[0].norm.vmax == pytest.approx(small.points[:, 2].max())
