"""Transformer shapes: the same seed gives the same run in separate processes, also after SIGKILL + resume."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from same_seed import check_same_seed_and_resume  # noqa: E402

SPEC = """
seed = 2
[space]
name = "transformer_shapes"
seq_length = 64
[[objectives]]
name = "model_size"
[[objectives]]
name = "gflops"
[search]
population = 16
generations = 40
[backend]
kind = "local"
"""


def test_same_seed_same_run_across_processes_and_after_sigkill_resume(tmp_path):
    front = check_same_seed_and_resume(tmp_path, SPEC, generations=40, kill_after=2)
    assert len(front["front"]) >= 2
