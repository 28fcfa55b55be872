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
