"""Spinal-line estimation from back scans: the network, its LightningModule, and its error measures.

``SpineEstimatorNet`` (PointNet++ keypoint regressor), ``SpineEstimator`` (LightningModule; train with
``python -m pcdiff.estimator.train configs/estimator.yaml``), ``line_errors``/``summarize`` (mm, degrees).
"""

from .metrics import line_errors, summarize
from .model import SpineEstimatorNet
from .module import SpineEstimator

__all__ = ["SpineEstimator", "SpineEstimatorNet", "line_errors", "summarize"]
