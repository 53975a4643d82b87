"""pcdiff's benchmarks, run from the repository root as ``python -m benchmarks.<name>`` (``--help`` for each).

Shared helpers, one job a module: :mod:`benchmarks.reporting` (hardware, timing, the results writer),
:mod:`benchmarks.training` (configs and Lightning training), :mod:`benchmarks.sampling` (generating backs),
:mod:`benchmarks.retrieval` (the nearest-spine baseline), :mod:`benchmarks.scoring` (paired and spine metrics).
Results go to ``benchmarks/results/`` as JSON + Markdown.
"""
