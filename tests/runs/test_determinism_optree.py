"""Operator trees with fitted constants: the same seed gives the same run in separate processes, also after
SIGKILL + resume (scipy's least squares gave different constants per process; see spaces/levenberg_marquardt.py),
with novelty retries and stagnation restarts on, as the optree preset runs."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from same_seed import REPO, check_same_seed_and_resume  # noqa: E402

SPEC = """
seed = 1
[space]
name = "optree"
max_depth = 5
constants = true
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
novelty_tries = 2       # the preset's diversity mechanisms are covered too
restart_after = 3
[backend]
kind = "local"
"""


def test_same_seed_same_run_across_processes_and_after_sigkill_resume(tmp_path):
    spec = SPEC.replace("{data}", str(REPO / "runs/presets/data/nernst.csv"))
    front = check_same_seed_and_resume(tmp_path, spec, generations=12, kill_after=3)
    fitted = [row["key"] for row in front["front"] if any(_number(token) for token in row["key"].split())]
    assert fitted, "no front member carries a fitted constant: the test would not cover constant fitting"


def _number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True
