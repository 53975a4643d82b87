"""Geometry on spinal lines: arc-length resampling, Cobb angles and the coordinate frames (:mod:`.frames`)."""
