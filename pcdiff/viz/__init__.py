"""Views of backs: interactive plotly 3D scatter (:mod:`pcdiff.viz.plotly`) and headless matplotlib
renders for figures and training logs (:mod:`pcdiff.viz.static`). Points are coloured by depth z,
spinal lines (ESL, ISL, or given spine keypoints) and landmarks are drawn in."""

from pcdiff.viz.plotly import scatter3d_figure, sweep_figure
from pcdiff.viz.static import point_cloud_figure, render_point_clouds, save_point_cloud_figure

__all__ = [
    "point_cloud_figure",
    "render_point_clouds",
    "save_point_cloud_figure",
    "scatter3d_figure",
    "sweep_figure",
]
