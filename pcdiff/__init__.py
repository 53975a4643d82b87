"""pcdiff: spine-conditioned point-cloud diffusion for synthetic 3D back scans.

Coordinates everywhere are the 4D-Spine convention: millimetres, x lateral (+x is
the subject's right), y vertical (up, from the pelvis towards C7), z out of the
back towards the scanner (the back surface near z = 0, the internal spinal line
40-90 mm in front of it, i.e. at negative z).
"""

__version__ = "0.1.0"
