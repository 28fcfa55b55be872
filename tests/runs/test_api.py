"""runs.api: the jobs of the CLI from Python, returning dataclasses; the same runs, fronts and errors."""

import json
import subprocess
import sys
import tomllib
from dataclasses import replace

import pytest

from runs import api
from runs.job import build_job
from runs.rundir import RunDirectory
from runs.spec import load_spec
from search.engine import evolve
from search.evaluation import LocalEvaluator
from search.protocols import UserError

SMALL = {"search.population": 12, "search.generations": 4, "space.length": 24}


def test_presets_are_listed_with_descriptions():
    presets = {p.name: p for p in api.presets()}
    assert {"quickstart", "optree", "trap", "megakernel", "ulp_exp"} <= set(presets)
    assert presets["trap"].path.name == "trap.toml" and "4-traps" in presets["trap"].description


def test_run_a_preset_with_overrides_then_read_and_emit(tmp_path):
    out = tmp_path / "trap"
    result = api.run("trap", {**SMALL, "seed": 9}, out=out, seed=2, local=True)
    assert result.path == out and result.name == "trap" and result.objectives == ("trap", "ones")
    assert result.generations == 4 and result.stop_reason == "4 generations done"
    assert result.evaluations > 12 and result.elapsed > 0
    spec = tomllib.loads((out / "spec.toml").read_text())
    assert spec["seed"] == 2 and spec["backend"]["kind"] == "local"      # keyword options win over overrides
    assert spec["search"]["population"] == 12 and spec["space"]["length"] == 24
    front = api.read_front(out)
    assert front.stop_reason == result.stop_reason and front.rows == json.loads(json.dumps(result.front))
    assert result.best == result.front[0] and set(result.best) >= {"rank", "program", "trap", "ones"}
    ran = subprocess.run([sys.executable, str(result.code)], capture_output=True, text=True, check=True)
    assert ran.stdout.strip() == result.best["program"]  # the emitted program prints its bits
    code = api.emit(out, lang="c", rank=len(front.rows) - 1)
    assert code.lang == "c" and code.rank == len(front.rows) - 1 and code.path.read_text() == code.source
    bits = ", ".join(front.rows[-1]["program"])                          # the last member's bits, as a C array
    assert f"evoforge_bits[24] = {{{bits}}};" in code.source and code.path.parent == out / "code"


def test_resume_after_a_kill_gives_the_uninterrupted_front(tmp_path):
    """A run checkpointed after generation 2 (as a kill leaves it) and resumed = the same run done in one go."""
    straight = api.run("trap", SMALL, out=tmp_path / "straight", seed=3, local=True)
    spec = load_spec("trap", {**SMALL, "seed": 3, "backend.kind": "local"})
    killed = RunDirectory.create(tmp_path / "killed", spec.table)
    job = build_job(spec)
    state = evolve(job.space, job.objective, replace(spec.search, generations=2), seed=3,
                   evaluator=LocalEvaluator(job.objective))
    state.stop_reason = None
    killed.save_checkpoint(state)
    resumed = api.resume(killed.path)
    assert resumed.generations == 4 and resumed.evaluations == straight.evaluations
    assert resumed.front == straight.front
    assert [line["generation"] for line in killed.read_stats()] == [3, 4]  # continued, not restarted
    again = api.resume(killed.path)                     # a finished run comes back as it is
    assert again.front == resumed.front and again.evaluations == resumed.evaluations


def test_mistakes_are_one_line_user_errors(tmp_path):
    with pytest.raises(UserError, match="SPEC: 'trapp' is neither a file nor a preset; did you mean 'trap'"):
        api.run("trapp")
    with pytest.raises(UserError, match="search.populaton: unknown field; did you mean 'population'"):
        api.run("trap", {"search.populaton": 3}, local=True, out=tmp_path / "x")
    with pytest.raises(UserError, match="is not a run directory"):
        api.read_front(tmp_path)
    spec = load_spec("trap", SMALL)
    RunDirectory.create(tmp_path / "fresh", spec.table)
    with pytest.raises(UserError, match="has no checkpoint yet"):
        api.emit(tmp_path / "fresh")
    with pytest.raises(UserError, match="has no front.json yet"):
        api.read_front(tmp_path / "fresh")
