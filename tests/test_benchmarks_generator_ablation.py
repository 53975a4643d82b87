"""benchmarks.generator_ablation: the judge column (the network-free ESL reader on every row's backs)."""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.generator_ablation import judge_row
from pcdiff.data.phantom import generate_phantom


def test_judge_row_reads_each_back_against_its_requested_line():
    """True phantom backs judged against their own ESL read closer (and at a smaller Cobb difference) than against
    shuffled lines: the column measures spine-following, not a constant."""
    scans = [generate_phantom(seed, 4096) for seed in range(3)]
    backs = torch.as_tensor(np.stack([s.points for s in scans]), dtype=torch.float32)
    own = judge_row(backs, [s.esl for s in scans])
    swapped = judge_row(backs, [scans[(i + 1) % 3].esl for i in range(3)])
    assert own["judge_failed"] == 0 and set(own) == {"judge_lateral_mm", "judge_cobb_deg", "judge_failed"}
    assert own["judge_lateral_mm"] < 10.0 < swapped["judge_lateral_mm"]
    assert swapped["judge_lateral_mm"] > 2 * own["judge_lateral_mm"]
