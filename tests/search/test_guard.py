"""A space method that raises or hangs on one genome: the run goes on and the failure is logged with its reason;
a space that fails on most genomes stops the run with one `error:` line."""

import subprocess
import sys
from pathlib import Path

import pytest
from faulty_objective import FaultyOneMax
from flaky_space import FlakySpace

from search.engine import SearchSettings, evolve, front_table
from search.guard import SpaceBroken, time_limit
from search.protocols import Context, UserError

REPO = Path(__file__).resolve().parents[2]
SETTINGS = SearchSettings(population=24, generations=8, crossover_prob=0.4, mutation_prob=0.6)


def run(seconds=10.0, **switches):
    space = FlakySpace(FlakySpace.Config(**switches), Context(seed=0))
    objective = FaultyOneMax(FaultyOneMax.Config(hang_seconds=0.0), space, Context(seed=0))  # raises on 1,1...
    reports = []
    settings = SearchSettings(**{**SETTINGS.__dict__, "space_time_limit": seconds})
    state = evolve(space, objective, settings, seed=3, on_generation=lambda s, r: reports.append(r))
    return state, reports, objective


def test_a_raising_describe_leaves_the_run_alive_with_the_failure_logged():
    state, reports, objective = run(bad_describe=True)
    assert state.generation == 8 and state.stop_reason == "8 generations done"
    failures = [f for r in reports for f in r.failures]
    logged = [f for f in failures if f["genome"].startswith("(1, 0")]   # evaluation failed, then describe raised
    described = [f for f in failures if f["genome"].startswith("11")]
    assert described and all(f["reason"].startswith("ValueError: refusing genomes that start with 11") for f in described)
    if logged:  # a genome that both fails evaluation and breaks describe keeps its repr and both reasons
        assert all("space.describe raised ValueError: describe bug on 10..." in f["genome"] for f in logged)
    rows = front_table(state.front, objective, objective.space.describe)
    assert rows and all(isinstance(row["program"], str) for row in rows)


def test_describe_of_a_failed_genome_that_raises_is_logged_with_both_reasons():
    space = FlakySpace(FlakySpace.Config(bad_describe=True, length=6), Context())
    objective = FaultyOneMax(FaultyOneMax.Config(hang_seconds=0.0), space, Context())
    from search.engine import _evaluate
    from search.evaluation import LocalEvaluator
    from search.guard import GenerationFaults, GuardedSpace

    genomes = [(1, 0, 1, 1, 0, 0), (1, 1, 0, 0, 0, 0), (0, 0, 1, 1, 1, 0)]
    objective.evaluate = lambda g: (_ for _ in ()).throw(ValueError("evaluation bug")) if g[0] == 1 else (1.0,)
    individuals, new, failures = _evaluate(genomes, GuardedSpace(space, 5.0), LocalEvaluator(objective), {},
                                           objective, GenerationFaults())
    assert new == 3 and [ind.evaluation.failed is None for ind in individuals] == [False, False, True]
    assert failures[0]["genome"].startswith("(1, 0, 1, 1, 0, 0) [space.describe raised ValueError: describe bug")
    assert failures[0]["reason"].startswith("ValueError: evaluation bug")
    assert failures[1]["genome"] == "110000"


def test_a_raising_mutate_is_retried_on_other_parents_and_counted():
    state, reports, _ = run(bad_mutate=True)
    assert state.generation == 8
    retries = sum(r.stats["variation_retries"] for r in reports)
    assert retries > 0
    assert sum(r.stats["space_failures"] for r in reports) == retries
    mutate_failures = [f for r in reports for f in r.failures if "space.mutate raised RuntimeError" in f["reason"]]
    assert len(mutate_failures) == retries
    assert all(f["genome"].startswith("00") for f in mutate_failures)
    clean, clean_reports, _ = run()
    assert sum(r.stats["variation_retries"] for r in clean_reports) == 0


def test_a_raising_key_makes_a_failed_individual():
    state, reports, _ = run(bad_key=True)
    assert state.generation == 8
    keyless = [f for r in reports for f in r.failures if "space.key raised KeyError" in f["reason"]]
    # bit strings describe themselves by their key, so the log falls back to the genome's repr with both reasons
    assert keyless and all(f["genome"].startswith("(") and "1, 1, 1) [space.describe raised KeyError" in f["genome"]
                           for f in keyless)
    assert all(not ind.key.startswith("<no key") for ind in state.front)


def test_a_hanging_describe_is_cut_at_the_time_limit():
    space = FlakySpace(FlakySpace.Config(hang_describe=True), Context())
    objective = FaultyOneMax(FaultyOneMax.Config(hang_seconds=0.0), space, Context())
    from search.protocols import Evaluation
    from search.selection import Individual
    front = [Individual((1, 0) + (1,) * 22, Evaluation(values=(23.0,)), "a"),
             Individual((0, 1) + (1,) * 22, Evaluation(values=(23.0,)), "b")]
    rows = front_table(front, objective, space.describe, describe_seconds=0.3)
    assert "space.describe took longer than 0.3 s" in rows[0]["program"]
    assert rows[1]["program"] == "01" + "1" * 22


def test_an_outer_timer_survives_an_inner_limit():
    import signal
    import time

    fired = []
    previous = signal.signal(signal.SIGALRM, lambda *_: fired.append(1))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.4)
        with time_limit(0.1):
            pass
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 0.0 < remaining <= 0.4
        time.sleep(0.6)
        assert fired == [1]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_a_space_failing_on_most_genomes_stops_with_one_user_error():
    with pytest.raises(SpaceBroken) as caught:
        run(broken=True)
    assert isinstance(caught.value, UserError)
    # 24 children x 8 tries, all failed, plus 24 keys (of the copies of first parents)
    assert "space FlakySpace: 192 of 216 calls failed in generation 1" in str(caught.value)
    assert "RuntimeError" in str(caught.value)


def test_the_cli_prints_one_error_line_for_a_broken_space(tmp_path):
    spec = tmp_path / "flaky.toml"
    spec.write_text('seed = 1\n[space]\nname = "flaky"\nbroken = true\n[[objectives]]\nname = "onemax"\n'
                    '[search]\npopulation = 12\ngenerations = 3\n[backend]\nkind = "local"\n')
    code = ("import sys, spaces; sys.path.insert(0, 'tests/support'); spaces.REGISTRY['flaky'] = "
            "'flaky_space:FlakySpace'; from runs.cli import main; main(sys.argv[1:])")
    done = subprocess.run([sys.executable, "-c", code, "run", str(spec), "--out", str(tmp_path / "run"), "--quiet"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: space FlakySpace:") and "Traceback" not in done.stderr


def test_a_negative_space_time_limit_is_a_spec_error_naming_the_field():
    from runs.spec import SpecError, load_spec

    with pytest.raises(SpecError, match=r"search.space_time_limit: must be >= 0 seconds \(0 = no limit\), got -1.0"):
        load_spec("quickstart", {"search.space_time_limit": -1.0})
