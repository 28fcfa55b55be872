"""Calibrating a proxy on a synthetic cost model, where the true per-feature costs are known."""

import numpy as np
import pytest

from search.calibration import MIN_CANDIDATES, calibrate, calibrate_run, refit, spearman
from search.measurement import Measurement, measure


def _synthetic(n=60, seed=0):
    """Counts of four kinds of operation; the true cost of the third is 8x the others' (a division among fmas),
    and the fourth costs half. Measured = true cost + 3% multiplicative noise."""
    rng = np.random.default_rng(seed)
    features = rng.integers(0, 10, size=(n, 4)).astype(float)
    true = np.array([1.0, 1.0, 8.0, 0.5])
    measured = features @ true * (1 + 0.03 * rng.standard_normal(n))
    return features, measured, true


def test_calibration_improves_rank_correlation_on_a_synthetic_cost_model():
    features, measured, true = _synthetic()
    cal = calibrate(features, measured, prior=[1, 1, 1, 1], feature_names=["add", "mul", "div", "load"],
                    rng=np.random.default_rng(1))
    assert cal.n == 60 and cal.folds == 5
    assert cal.spearman_before < 0.75                      # op count: every operation costs the same
    assert cal.spearman_after > 0.97 and cal.spearman_after_cv > 0.97
    np.testing.assert_allclose(cal.fitted, true, rtol=0.1)
    assert cal.as_dict()["fitted"]["div"] == pytest.approx(8.0, rel=0.1)


def test_refit_recovers_exact_costs_and_never_goes_negative():
    features = np.array([[1, 0, 2], [0, 1, 1], [3, 1, 0], [1, 1, 1], [2, 0, 1]], dtype=float)
    np.testing.assert_allclose(refit(features, features @ [2.0, 0.5, 3.0]), [2.0, 0.5, 3.0], atol=1e-9)
    # a feature that would need a negative cost gets zero
    costs = refit(features, features @ [2.0, 0.5, 3.0] - 0.4 * features[:, 1])
    assert np.all(costs >= 0)


def test_spearman_of_constant_is_zero_and_of_monotone_is_one():
    assert spearman([1, 2, 3, 4], [10, 20, 35, 90]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 1], [1, 2, 3]) == 0.0


def test_measure_discards_warmup_and_reports_median_and_iqr():
    ticks = iter([0.0, 1.0, 1.0, 3.0, 3.0, 4.0, 4.0, 8.0, 8.0, 9.0])   # clock: begin/end pairs -> 1, 2, 1, 4, 1
    calls = []
    m = measure(lambda: calls.append(1), warmup=2, repeats=5, clock=lambda: next(ticks))
    assert len(calls) == 7
    assert m.samples == (1.0, 2.0, 1.0, 4.0, 1.0) and m.median == 1.0 and m.iqr == 1.0
    assert m.scaled(1e3).median == 1e3
    own = measure(lambda: 0.25, warmup=0, repeats=3, self_timed=True)
    assert own == Measurement(0.25, 0.0, (0.25, 0.25, 0.25))


def test_measure_propagates_the_failure():
    def broken():
        raise RuntimeError("kernel launch failed")

    with pytest.raises(RuntimeError, match="kernel launch failed"):
        measure(broken)


class _OpsProxy:
    """A calibratable proxy over genomes that are tuples of operation counts (add, div)."""

    def cost_features(self, genome):
        return {"add": float(genome[0]), "div": float(genome[1])}

    def cost_weights(self):
        return {"add": 1.0, "div": 1.0}


class _Combined:
    parts = [object(), _OpsProxy()]


def test_calibrate_run_finds_the_proxy_part_and_needs_enough_measurements():
    rng = np.random.default_rng(4)
    genomes = [tuple(int(v) for v in rng.integers(0, 8, 2)) for _ in range(30)]
    history = [(g, (float(sum(g)),), (1.0 * g[0] + 10.0 * g[1],)) for g in genomes]
    cal = calibrate_run(_Combined(), history, np.random.default_rng(0))
    assert cal.n == 30 and cal.spearman_after > cal.spearman_before
    assert cal.as_dict()["fitted"]["div"] / cal.as_dict()["fitted"]["add"] == pytest.approx(10.0, rel=1e-6)
    assert calibrate_run(_Combined(), history[:MIN_CANDIDATES - 1], np.random.default_rng(0)) is None
    assert calibrate_run(object(), history, np.random.default_rng(0)) is None
