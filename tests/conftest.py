"""Shared fixtures: a real embedded Ray (started once per session) and the test-support objectives."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "support"))


@pytest.fixture(scope="session")
def ray_two_workers():
    """A real local Ray with 2 CPUs, shared by the tests that need one; objectives from tests/support are
    pickled by value so Ray workers need not import the test tree."""
    import faulty_objective
    import ray

    ray.cloudpickle.register_pickle_by_value(faulty_objective)
    # one fake "timing_core" custom resource: tests/search/test_hardware.py checks measured objectives land on it
    ray.init(num_cpus=2, resources={"timing_core": 1}, include_dashboard=False, logging_level="ERROR",
             log_to_driver=False)
    yield ray
    ray.shutdown()
