"""Malformed specs exit non-zero with one clear line naming the field, never a traceback."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from cli_helpers import evoforge  # noqa: E402

GOOD = """
seed = 0
[space]
name = "bitstring"
length = 16
[[objectives]]
name = "onemax"
[search]
population = 8
generations = 2
[backend]
kind = "local"
"""

CASES = [
    ('name = "bitstring"', 'name = "bitstrng"', "space.name: unknown space 'bitstrng'; did you mean 'bitstring'?"),
    ("population = 8", "population = -3", "search.population: must be a positive integer, got -3"),
    ("population = 8", "populaton = 8", "search.populaton: unknown field; did you mean 'population'?"),
    ("length = 16", 'length = "long"', "space.length: expected int, got 'long'"),
    ('name = "onemax"', 'name = "twomax"', "objectives[0].name: unknown objectives 'twomax'"),
    ('kind = "local"', 'kind = "cluster"', "backend.kind: unknown backend 'cluster'; allowed: local, ray"),
    ("seed = 0", "seed = -1", "seed: expected a non-negative integer, got -1"),
    ("generations = 2", "generations = 2\ntargets = { onez = 3 }", "search.targets.onez: not an objective of this run"),
    ("[search]", "[serch]", "serch: unknown top-level field; did you mean 'search'?"),
    ("generations = 2", "generations = 2\ncrossover_prob = 0.9", "search.crossover_prob + search.mutation_prob: must be <= 1"),
    ("generations = 2", "generations = 2\nnovelty_tries = -1", "search.novelty_tries: must be >= 0 (0 = off), got -1"),
    ("generations = 2", "generations = 2\npolish = -4", "search.polish: must be >= 0 evaluations (0 = off), got -4"),
    ("generations = 2", "generations = 2\npolish = 8\n[islands]\nislands = 2\nmigration_interval = 1",
     "search.polish: not available with [islands]"),
    ("seed = 0", "seed = 0\n[space", "not valid TOML"),
]


@pytest.mark.parametrize("old,new,expected", CASES, ids=[c[2].split(":")[0] for c in CASES])
def test_bad_spec_gives_one_line_error(tmp_path, old, new, expected):
    spec = tmp_path / "bad.toml"
    assert old in GOOD
    spec.write_text(GOOD.replace(old, new, 1))
    result = evoforge("run", spec, "--out", tmp_path / "out", "--quiet")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and expected in lines[0], lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "out").exists()


def test_unknown_preset_and_existing_rundir(tmp_path):
    result = evoforge("run", "trapp", "--quiet")
    assert result.returncode == 2 and "did you mean 'trap'?" in result.stderr
    spec = tmp_path / "ok.toml"
    spec.write_text(GOOD)
    assert evoforge("run", spec, "--out", tmp_path / "r", "--quiet").returncode == 0
    again = evoforge("run", spec, "--out", tmp_path / "r", "--quiet")
    assert again.returncode == 2 and "already holds a run" in again.stderr


def test_bad_data_file_errors(tmp_path):
    spec = tmp_path / "d.toml"
    spec.write_text(GOOD)
    missing = evoforge("run", spec, "--data", tmp_path / "none.csv", "--target", "y", "--quiet")
    assert missing.returncode == 2 and "data.path: cannot read" in missing.stderr
