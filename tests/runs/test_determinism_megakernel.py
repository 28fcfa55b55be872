"""Megakernel schedules: the same seed gives the same run in separate processes, also after SIGKILL + resume."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from same_seed import check_same_seed_and_resume  # noqa: E402

SPEC = """
seed = 5
[space]
name = "megakernel"
hidden_size = 64
intermediate_size = 128
num_hidden_layers = 1
num_attention_heads = 4
num_key_value_heads = 2
vocab_size = 128
workers = 4
rows = [16, 32]
heads = [1, 2]
[[objectives]]
name = "schedule_validator"
[[objectives]]
name = "makespan"
[search]
population = 10
generations = 8
[backend]
kind = "local"
"""


def test_same_seed_same_run_across_processes_and_after_sigkill_resume(tmp_path):
    front = check_same_seed_and_resume(tmp_path, SPEC, generations=8, kill_after=2)
    assert front["front"][0]["makespan_us"] > 0
