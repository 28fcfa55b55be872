"""backend.mode in a job: "auto" measures and pins its choice in the run directory; bad modes are one line."""

import tomllib

import pytest

from runs.job import start
from runs.spec import SpecError, load_spec

SPEC = """
seed = 2
[space]
name = "bitstring"
length = 24
[[objectives]]
name = "onemax"
[search]
population = 16
generations = 6
[backend]
workers = 2
"""


def write(tmp_path, text):
    path = tmp_path / "spec.toml"
    path.write_text(text)
    return str(path)


def test_auto_runs_a_cheap_job_in_process_says_so_and_pins_it(tmp_path, capsys):
    job, run, state = start(load_spec(write(tmp_path, SPEC)), tmp_path / "run", progress=False)
    line = capsys.readouterr().err.strip()
    assert line.startswith("backend: in-process (evaluations take ") and "\n" not in line
    assert tomllib.loads((tmp_path / "run" / "spec.toml").read_text())["backend"]["mode"] == "local"
    assert state.generation == 6 and state.stop_reason == "6 generations done"
    local_job, _, local_state = start(load_spec(write(tmp_path, SPEC), {"backend.kind": "local"}),
                                      tmp_path / "local", progress=False)
    assert capsys.readouterr().err == ""  # asked for in-process: nothing to say
    assert [(f.key, f.evaluation) for f in state.front] == [(f.key, f.evaluation) for f in local_state.front]
    assert state.evaluations == local_state.evaluations


@pytest.mark.parametrize("extra, message", [
    ('mode = "island"', "backend.mode: unknown mode 'island'; did you mean 'islands'? allowed: auto, generational, "
                        "islands, local"),
    ('mode = "generational"\n[islands]\nislands = 2',
     "backend.mode: 'generational' runs one population but the spec has [islands]; use \"islands\", \"auto\" or "
     "\"local\", or remove the [islands] table"),
])
def test_bad_modes_are_one_line(tmp_path, extra, message):
    with pytest.raises(SpecError) as error:
        load_spec(write(tmp_path, SPEC + extra))
    assert str(error.value) == message


def test_local_mode_with_a_cluster_address_is_refused(tmp_path):
    spec = load_spec(write(tmp_path, SPEC + 'mode = "local"'), {"backend.address": "127.0.0.1:1",
                                                                "backend.kind": "ray"})
    with pytest.raises(SpecError, match=r"^backend.mode: 'local' runs in-process but --address"):
        start(spec, tmp_path / "run", progress=False)


@pytest.mark.slow  # two command-line runs and a failing Ray start-up: about 15 s on a quiet 2-core machine
def test_a_ray_that_cannot_start_leaves_the_run_in_process_with_the_same_front(tmp_path):
    """A real start-up failure (Ray's socket paths under a temp dir longer than AF_UNIX allows): the run goes on
    in-process, says so in one line, and ends with the in-process front."""
    import json
    import os
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from cli_helpers import evoforge

    long_tmp = Path("/tmp") / ("r" * 100)
    long_tmp.mkdir(exist_ok=True)
    spec = write(tmp_path, SPEC + 'mode = "generational"')
    env = {**os.environ, "RAY_TMPDIR": str(long_tmp)}
    env.pop("RAY_ADDRESS", None)
    result = evoforge("run", spec, "--out", tmp_path / "ray", "--quiet", env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    said = [line for line in result.stderr.splitlines() if line.startswith("backend:")]
    assert len(said) == 1 and said[0].startswith("backend: in-process instead: the embedded Ray did not start (")
    local = evoforge("run", spec, "--out", tmp_path / "local", "--quiet", "--local")
    assert local.returncode == 0, local.stderr[-2000:]
    front = json.loads((tmp_path / "ray" / "front.json").read_text())
    assert front == json.loads((tmp_path / "local" / "front.json").read_text()) and front["front"]
