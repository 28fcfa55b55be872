"""The schedule IR's JSON format: round trips, and a loader that turns every malformed file into one UserError."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from search.protocols import UserError
from spaces.megakernel.ir import from_dict, load_schedule, structure_errors, to_dict, to_json
from spaces.megakernel.lower import LlamaShape, Tiling, lower

SMALL = lower(LlamaShape(), Tiling(rows=8, heads=1, workers=2), "tile")


def test_json_round_trip_is_exact(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(to_json(SMALL))
    back = load_schedule(path)
    assert back == SMALL
    assert structure_errors(back) == []


def test_missing_file_and_bad_json_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="no file"):
        load_schedule(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        load_schedule(tmp_path / "bad.json")


def test_run_of_unknown_task_names_the_step():
    d = to_dict(SMALL)
    d["workers"][1][0] = ["run", "no-such-task"]
    with pytest.raises(UserError, match=r"workers\[1\]\[0\]"):
        from_dict(d)


def test_task_run_twice_is_rejected():
    d = to_dict(SMALL)
    d["workers"][1].append(d["workers"][0][0])
    with pytest.raises(UserError, match="exactly once"):
        from_dict(d)


def test_region_outside_buffer_is_rejected():
    d = to_dict(SMALL)
    d["tasks"][3]["writes"][0][2] = 10**6
    with pytest.raises(UserError, match="outside"):
        from_dict(d)


junk = st.recursive(st.none() | st.booleans() | st.integers(-3, 10**6) | st.text(max_size=5) | st.floats(),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
                    max_leaves=12)


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


PATHS = list(_paths(to_dict(SMALL)))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(PATHS) - 1), junk), min_size=1, max_size=3))
def test_loader_accepts_or_raises_user_error_only(edits):
    d = json.loads(to_json(SMALL))
    for index, value in edits:
        path = PATHS[index]
        target = d
        try:
            for key in path[:-1]:
                target = target[key]
            if path:
                target[path[-1]] = value
            else:
                d = value
        except (KeyError, IndexError, TypeError):
            continue
    try:
        s = from_dict(d)
    except UserError as e:
        assert "\n" not in str(e) and ":" in str(e)
        return
    assert structure_errors(s) == []
