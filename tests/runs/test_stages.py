"""Staged runs from a spec: `stage` keys and the [stages] table, their one-line errors, and a whole staged run
(float32 exp, op count and max ULP on every child, compiled-and-timed throughput on promoted ones)."""

import json
import sys
import tomllib
from pathlib import Path

import pytest

from runs.job import start
from runs.spec import SpecError, parse_spec
from search.fidelity import StagedObjective

sys.path.insert(0, str(Path(__file__).parent))
from cli_helpers import evoforge  # noqa: E402

STAGED = """
seed = 0
[space]
name = "float32"
target = "exp"
max_ops = 6
seed_polynomials = true
fit_starts = 1
[[objectives]]
name = "ulp"
samples = 500
[[objectives]]
name = "ops"
[[objectives]]
name = "throughput"
elements = 1024
calls = 2
repeats = 3
[stages]
promote = "top_fraction"
fraction = 0.5
[search]
population = 6
generations = 1
[backend]
kind = "local"
timeout = 60.0
"""


def _parse(text):
    return parse_spec(tomllib.loads(text), "t", Path("."))


def test_measured_stage_defaults_from_the_objectives_resources():
    spec = _parse(STAGED.replace('[stages]\npromote = "top_fraction"\nfraction = 0.5\n', ""))
    assert [p.stage for p in spec.objectives] == ["cheap", "cheap", "measured"]
    assert spec.stages.promote == "front" and spec.stages.devices == 1 and spec.stages.remeasure


CASES = [
    ('name = "throughput"', 'name = "throughput"\nstage = "slow"',
     "objectives[2].stage: unknown stage 'slow'; allowed: cheap, measured"),
    ('name = "throughput"', 'name = "throughput"\nstage = "cheap"',
     'stages: no objective has stage = "measured"; add it to the [[objectives]] table that measures, or remove [stages]'),
    ('name = "ops"', 'name = "ops"\nstage = "measured"\n[[objectives]]\nname = "ulp"\nstage = "measured"',
     "objectives: objective names repeat"),
    ('promote = "top_fraction"', 'promote = "thirds"',
     "stages.promote: unknown rule 'thirds'; allowed: all, top_fraction, front, halving"),
    ("fraction = 0.5", "eta = 1", "stages.eta, stages.rungs: both must be >= 2, got 1, 2"),
    ("fraction = 0.5", "fraction = 0.0", "stages.fraction: must be within (0, 1], got 0.0"),
    ("fraction = 0.5", "fractoin = 0.5", "stages.fractoin: unknown field; did you mean 'fraction'?"),
    ("fraction = 0.5", "devices = 0", "stages.devices: must be a positive integer, got 0"),
    ("[search]", "[islands]\nislands = 2\n[search]",
     'islands: not available with measured objectives (stage = "measured"); remove [islands]'),
    ('kind = "local"', 'kind = "ray"\nmode = "islands"',
     'backend.mode: "islands" is not available with measured objectives (stage = "measured"); use "auto" or'),
]


@pytest.mark.parametrize("old,new,expected", CASES, ids=[c[2].split(":")[0] + str(i) for i, c in enumerate(CASES)])
def test_bad_stage_settings_are_one_line_errors(old, new, expected):
    with pytest.raises(SpecError) as err:
        _parse(STAGED.replace(old, new))
    assert str(err.value).startswith(expected) and "\n" not in str(err.value)


def test_all_measured_needs_a_cheap_stage():
    text = STAGED.replace('name = "ulp"', 'name = "ulp"\nstage = "measured"').replace(
        'name = "ops"', 'name = "ops"\nstage = "measured"')
    with pytest.raises(SpecError, match='objectives: every objective has stage = "measured"; add a cheap one'):
        _parse(text)


def test_cli_prints_a_stage_error_as_one_line(tmp_path):
    spec = tmp_path / "bad.toml"
    spec.write_text(STAGED.replace('promote = "top_fraction"', 'promote = "best"'))
    done = evoforge("run", spec, "--out", tmp_path / "run", timeout=120)
    assert done.returncode != 0
    assert done.stderr.strip() == ("error: stages.promote: unknown rule 'best'; allowed: all, top_fraction, front, "
                                   "halving")


def test_staged_run_measures_promoted_children_and_remeasures_the_front(tmp_path):
    spec = _parse(STAGED)
    job, run, state = start(spec, tmp_path / "run", progress=False)
    assert isinstance(job.objective, StagedObjective)
    assert job.objective.names == ("max_ulp", "ops", "ns_per_element")
    stages = json.loads((tmp_path / "run" / "stages.json").read_text())
    feasible_per_call = [f for f, _ in stages["promoted_per_call"]]
    assert [p for _, p in stages["promoted_per_call"]] == [-(-f // 2) for f in feasible_per_call]  # ceil(half)
    front = json.loads((tmp_path / "run" / "front.json").read_text())["front"]
    assert front and all(row["ns_per_element"] > 0 and row["remeasured_ns_per_element"] > 0 for row in front)
    assert all(row["remeasured_ns_per_element_iqr"] >= 0 for row in front)


def test_staged_run_with_successive_halving(tmp_path):
    spec = _parse(STAGED.replace('promote = "top_fraction"\nfraction = 0.5', 'promote = "halving"\neta = 2'))
    start(spec, tmp_path / "run", progress=False)
    stages = json.loads((tmp_path / "run" / "stages.json").read_text())
    assert stages["promote"] == "halving"
    for feasible, promoted in stages["promoted_per_call"]:
        assert promoted == (-(-feasible // 2) if feasible > 1 else feasible)     # one rung: the better half
