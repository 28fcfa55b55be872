import time

import faulty_objective

from objectives.bit_problems import OneMax
from search.engine import SearchSettings, evolve
from search.evaluation import LocalEvaluator, guarded_evaluate
from search.protocols import Context, Evaluation
from spaces.bitstring import BitStringSpace


def faulty(hang=3600.0):
    space = BitStringSpace(BitStringSpace.Config(length=12), Context())
    return space, faulty_objective.FaultyOneMax(faulty_objective.FaultyOneMax.Config(hang_seconds=hang), space, Context())


def test_raise_and_hang_become_failed_evaluations_with_reasons():
    _, objective = faulty()
    raised = guarded_evaluate(objective, (1, 1) + (0,) * 10, timeout=0.5)
    assert raised.failed.startswith("ValueError: refusing genomes that start with 11")
    start = time.perf_counter()
    hung = guarded_evaluate(objective, (0, 1, 1) + (0,) * 9, timeout=0.3)
    assert hung.failed == "timeout after 0.3 s"
    assert time.perf_counter() - start < 2.0
    fine = guarded_evaluate(objective, (1, 0, 1) + (1,) * 9, timeout=0.3)
    assert fine == Evaluation(values=(11.0,))


def test_wrong_shapes_and_nan_are_failures_not_crashes():
    space = BitStringSpace(BitStringSpace.Config(length=4), Context())

    class Bad(OneMax):
        def evaluate(self, genome):
            return [float("nan")] if genome[0] else [1.0, 2.0]

    bad = Bad(OneMax.Config(), space, Context())
    assert "NaN" in guarded_evaluate(bad, (1, 0, 0, 0), None).failed
    assert "2 values for 1 objectives" in guarded_evaluate(bad, (0, 0, 0, 0), None).failed


def test_run_completes_with_faulty_objective_in_process():
    space, objective = faulty()
    failures = []
    state = evolve(space, objective, SearchSettings(population=16, generations=4), seed=0,
                   evaluator=LocalEvaluator(objective, timeout=0.05),
                   on_generation=lambda s, r: failures.extend(r.failures))
    reasons = {f["reason"].split(":")[0] for f in failures}
    assert reasons == {"ValueError", "timeout after 0.05 s"}
    assert all(f["genome"] for f in failures)
    assert state.front and state.front[0].evaluation.feasible


def test_thread_fallback_timeout_off_main_thread():
    import threading

    _, objective = faulty()
    box = {}
    worker = threading.Thread(target=lambda: box.setdefault("r", guarded_evaluate(objective, (0, 1, 1) + (0,) * 9, 0.2)))
    worker.start()
    worker.join(5)
    assert box["r"].failed == "timeout after 0.2 s"
