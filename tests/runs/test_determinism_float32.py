"""float32 programs: the same seed gives the same run in separate processes, also after SIGKILL + resume."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from same_seed import check_same_seed_and_resume  # noqa: E402

SPEC = """
seed = 3
[space]
name = "float32"
target = "exp"
max_ops = 8
seed_polynomials = true
[[objectives]]
name = "ulp"
samples = 1000
[[objectives]]
name = "ops"
[search]
population = 8
generations = 8
[backend]
kind = "local"
"""


def test_same_seed_same_run_across_processes_and_after_sigkill_resume(tmp_path):
    front = check_same_seed_and_resume(tmp_path, SPEC, generations=8, kill_after=2)
    assert front["front"][0]["max_ulp"] is not None
