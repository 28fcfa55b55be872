"""EML space: the same seed gives the same run in separate processes, also after SIGKILL + resume (the first
population includes gradient-trained circuits, which used to stop on a wall-clock cap)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from same_seed import REPO, check_same_seed_and_resume  # noqa: E402

SPEC = """
seed = 4
[space]
name = "eml"
max_depth = 4
seed_with_gradient = true
gradient_restarts = 8
gradient_steps = 40
[[objectives]]
name = "fit"
[[objectives]]
name = "size"
[data]
path = "{data}"
target = "E"
[search]
population = 40
generations = 12
[backend]
kind = "local"
"""


def test_same_seed_same_run_across_processes_and_after_sigkill_resume(tmp_path):
    spec = SPEC.replace("{data}", str(REPO / "runs/presets/data/nernst.csv"))
    front = check_same_seed_and_resume(tmp_path, spec, generations=12, kill_after=3)
    assert front["front"][0]["rmse"] < 1.0
