"""Geometry on spinal lines: arc-length resampling and Cobb angles."""
