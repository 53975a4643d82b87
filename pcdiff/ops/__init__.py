"""Batched point-cloud ops: pure PyTorch, dispatching to pytorch3d / torch-cluster when installed.

One public op a module: :mod:`.knn`, :mod:`.fps`, :mod:`.ball_query`, :mod:`.gather`,
:mod:`.pairwise` (voxelisation lives in :mod:`.voxelize`). Every op takes ``(B, N, D)`` batches.
"""

from .ball_query import ball_query
from .fps import farthest_point_sample
from .gather import gather_points
from .knn import KNN, knn_points
from .pairwise import square_distance

__all__ = ["KNN", "ball_query", "farthest_point_sample", "gather_points", "knn_points", "square_distance"]
