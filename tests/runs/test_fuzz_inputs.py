"""Fuzzing every input edge a user controls: spec TOML, CSV files, schedule JSON and `--to` sizes. Each generated
input either works or raises `UserError` with a one-line message (what the CLI prints as `error: ...`); any other
exception (the CLI would show a traceback) fails the test.

Generated cases per edge, default suite (`-m slow` variant in brackets):
    spec TOML, structured tables     100  [2000]
    spec TOML, arbitrary bytes       100  [2000]
    CSV files                        200  [3000]
    schedule JSON, mutated schedules 150  [2000]
    schedule JSON, arbitrary JSON    100  [1500]
    --to sizes                       500  [10000]
Hypothesis derandomized (a fixed seed), so a run is reproducible; the machine was shared while these were sized
(each edge under ~15 s on 2 loaded cores).
"""

import csv
import io
import json
import math
import warnings
from pathlib import Path

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import objectives  # noqa: E402
import spaces  # noqa: E402
from runs.cli import one_line  # noqa: E402
from runs.compress import parse_target  # noqa: E402
from runs.data import load_csv  # noqa: E402
from runs.spec import TOP_LEVEL, load_spec  # noqa: E402
from runs.validate import validate  # noqa: E402
from search.protocols import UserError  # noqa: E402

FAST = dict(deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None)
CASES = {"spec_tables": (100, 2000), "spec_bytes": (100, 2000), "csv": (200, 3000), "schedule_mutations": (150, 2000),
         "schedule_json": (100, 1500), "to_sizes": (500, 10000)}


def _one_line_error(call):
    """Run `call`; return its value, or None after a UserError whose message is one non-empty line."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return call()
    except UserError as exc:
        assert str(exc).strip(), "an empty error message"
        assert "\n" not in one_line(str(exc))      # what the CLI prints after `error: `
        return None


# ---- spec TOML --------------------------------------------------------------------------------------------------
SCALARS = st.one_of(st.integers(-3, 10**6), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                    st.booleans(), st.text(max_size=12), st.just("eml"), st.just("ray"), st.just("local"))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                          max_size=3), max_leaves=6)
SPACE_FIELDS = ["name", "max_depth", "variables", "target", "max_ops", "hidden_size", "workers", "rows", "length",
                "operators", "leaf_one", "init_depth", "ops", "const_prob", "teacher"]
SEARCH_FIELDS = ["population", "offspring", "generations", "max_evaluations", "wall_time", "targets", "tournament",
                 "crossover_prob", "mutation_prob", "hall_of_fame", "populaton"]
# distillation, throughput and latency are left out: building them loads a teacher or probes hardware, which is
# not what this test is about (their Config validation is the same build_dataclass path as every other objective)
OBJECTIVE_NAMES = sorted(set(objectives.REGISTRY) - {"distillation", "throughput", "latency"})


def _field_table(fields, names):
    name = st.sampled_from(names) | st.text(max_size=10)
    entry = st.tuples(st.sampled_from(fields), VALUES)
    return st.builds(lambda n, items, with_name: ({"name": n} if with_name else {}) | dict(items),
                     name, st.lists(entry, max_size=4), st.booleans())


SPEC_TABLES = st.fixed_dictionaries({}, optional={
    "seed": VALUES,
    "space": _field_table(SPACE_FIELDS, sorted(set(spaces.REGISTRY) - {"transformer_shapes"})) | VALUES,
    "objectives": st.lists(_field_table(["metric", "samples", "bound", "k", "name", "limit_mb"], OBJECTIVE_NAMES),
                           max_size=3) | VALUES,
    "search": st.dictionaries(st.sampled_from(SEARCH_FIELDS), VALUES, max_size=4) | VALUES,
    "backend": st.dictionaries(st.sampled_from(["kind", "workers", "timeout", "address", "mode"]), VALUES,
                               max_size=3),
    "islands": st.dictionaries(st.sampled_from(["islands", "migration_interval", "migrants"]), VALUES, max_size=2),
    "data": st.dictionaries(st.sampled_from(["path", "target", "extra"]), VALUES, max_size=3),
    "description": VALUES,
}) | st.dictionaries(st.sampled_from(sorted(TOP_LEVEL)) | st.text(max_size=6), VALUES, max_size=4)


def _spec_works_or_one_error(path: Path):
    from runs.job import build_job

    return _one_line_error(lambda: build_job(load_spec(str(path), {})))


def _spec_tables(tmp_path_factory, n):
    folder = tmp_path_factory.mktemp("specs")

    @settings(max_examples=n, **FAST)
    @given(SPEC_TABLES)
    def run(table):
        try:
            text = tomli_w.dumps(table)
        except (TypeError, ValueError):       # not expressible in TOML (None, mixed arrays): nothing to feed
            return
        path = folder / "spec.toml"
        path.write_text(text)
        _spec_works_or_one_error(path)

    run()


def _spec_bytes(tmp_path_factory, n):
    folder = tmp_path_factory.mktemp("specbytes")
    valid = (Path(__file__).parents[2] / "runs" / "presets" / "quickstart.toml").read_bytes()

    @settings(max_examples=n, **FAST)
    @given(st.binary(max_size=200) | st.builds(lambda cut, junk: valid[:cut] + junk, st.integers(0, len(valid)),
                                               st.binary(max_size=20)))
    def run(data):
        path = folder / "spec.toml"
        path.write_bytes(data)
        _spec_works_or_one_error(path)

    run()


def test_fuzz_spec_tables(tmp_path_factory):
    _spec_tables(tmp_path_factory, CASES["spec_tables"][0])


def test_fuzz_spec_bytes(tmp_path_factory):
    _spec_bytes(tmp_path_factory, CASES["spec_bytes"][0])


def _cli(argv, capsys):
    """The real entry point in-process (a subprocess would spend its time importing): (exit code, stderr)."""
    from runs.cli import main

    with pytest.raises(SystemExit) as stop:
        main([str(a) for a in argv])
    return stop.value.code, capsys.readouterr().err


def test_control_characters_in_a_spec_key_stay_on_one_error_line(tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text('"se\\ned\\r" = 1\n')
    code, err = _cli(["run", spec, "--local", "--quiet"], capsys)
    assert code == 2
    assert err.startswith("error: se\\ned\\r: unknown top-level field;") and err.count("\n") == 1


# ---- CSV --------------------------------------------------------------------------------------------------------
CELLS = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.integers().map(str),
                  st.text(max_size=6), st.just(""), st.just("1e999"), st.just(" 2.5 "))
HEADER = st.lists(st.text(max_size=8) | st.sampled_from(["x", "y", "a:x:b", "root:x:0:0", "[bold]z[/bold]"]),
                  min_size=1, max_size=4)


@st.composite
def csv_files(draw):
    header = draw(HEADER)
    rows = draw(st.lists(st.lists(CELLS, min_size=len(header) - 1, max_size=len(header) + 1), max_size=6))
    buffer = io.StringIO()
    if draw(st.booleans()):
        writer = csv.writer(buffer)
        writer.writerow(header)
        writer.writerows(rows)
        text = buffer.getvalue()
    else:                                    # hand-joined: quotes and commas inside cells are left as they are
        text = "\n".join(",".join(r) for r in [header, *rows]) + "\n"
    target = draw(st.sampled_from(header) | st.text(max_size=4))
    return text.encode() if draw(st.booleans()) else text.encode("latin-1", "replace"), target


def _csv(tmp_path_factory, n):
    folder = tmp_path_factory.mktemp("csv")

    @settings(max_examples=n, **FAST)
    @given(csv_files())
    def run(case):
        data, target = case
        path = folder / "data.csv"
        path.write_bytes(data)
        dataset = _one_line_error(lambda: load_csv(path, target))
        if dataset is not None:
            assert dataset.X.shape[0] == dataset.y.shape[0] >= 2 and target not in dataset.variables
            assert (dataset.X == dataset.X).all() and (abs(dataset.y) < math.inf).all()

    run()


def test_fuzz_csv(tmp_path_factory):
    _csv(tmp_path_factory, CASES["csv"][0])


@pytest.mark.parametrize("header", ["a:x:b", "root:x:0:0", ":smile: [red]r[/red]"])
def test_csv_header_is_printed_verbatim_in_the_error_line(tmp_path, capsys, header):
    data = tmp_path / "data.csv"
    data.write_text(f"{header},y\n1,oops\n2,3\n")
    args = ["run", "eml", "--data", data, "--local", "--quiet", "--out", tmp_path / "r", "--target"]
    assert _cli(args + ["y"], capsys) == (2, "error: data.path: data.csv line 2, column 'y': 'oops' is not a number\n")
    data.write_text(f"{header},y\n1,oops\n2,3\n".replace("oops", "2"))
    assert _cli(args + ["z"], capsys) == (2, f"error: data.target: column 'z' is not in data.csv; columns are {header}, y\n")
    data.write_text(f"y,{header}\n1,x\n2,3\n")
    assert _cli(args + ["y"], capsys) == (2, f"error: data.path: data.csv line 2, column '{header}': 'x' is not a number\n")


# ---- schedule JSON ----------------------------------------------------------------------------------------------
def _small_schedule() -> dict:
    from spaces.megakernel.ir import to_dict
    from spaces.megakernel.lower import LlamaShape, Tiling, lower

    return to_dict(lower(LlamaShape(hidden_size=8, intermediate_size=16, vocab_size=8, num_attention_heads=2,
                                    num_key_value_heads=1, max_position_embeddings=2, num_hidden_layers=1),
                         Tiling(rows=4, heads=1, workers=2), "tile"))


JSON = st.recursive(st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats() | st.text(max_size=6),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                    max_leaves=8)


@st.composite
def mutated_schedules(draw, base):
    """A valid schedule with 1-3 values somewhere inside replaced by arbitrary JSON (or deleted)."""
    doc = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(1, 3))):
        node, key = None, None
        current = doc
        for _ in range(draw(st.integers(1, 5))):
            keys = list(current) if isinstance(current, dict) else list(range(len(current))) \
                if isinstance(current, list) else []
            if not keys:
                break
            node, key = current, draw(st.sampled_from(keys))
            current = node[key]
        if node is None:
            continue
        if isinstance(node, dict) and draw(st.booleans()):
            del node[key]
        else:
            node[key] = draw(JSON)
    return doc


def _schedules(tmp_path_factory, n, strategy):
    folder = tmp_path_factory.mktemp("schedules")

    @settings(max_examples=n, **FAST)
    @given(strategy)
    def run(doc):
        path = folder / "schedule.json"
        path.write_text(json.dumps(doc) if not isinstance(doc, bytes) else "")
        code = _one_line_error(lambda: validate(str(path)))
        assert code in (0, 1, None)

    run()


def test_fuzz_schedule_mutations(tmp_path_factory, capsys):
    _schedules(tmp_path_factory, CASES["schedule_mutations"][0], mutated_schedules(_small_schedule()))


def test_fuzz_schedule_json(tmp_path_factory, capsys):
    _schedules(tmp_path_factory, CASES["schedule_json"][0], JSON)


# ---- --to sizes -------------------------------------------------------------------------------------------------
SIZES = st.text(max_size=10) | st.builds(lambda v, unit, space: f"{v}{space}{unit}", st.floats() | st.integers(),
                                         st.sampled_from(["MB", "mb", "KB", "GB", "m", "", "M B", "TB"]),
                                         st.sampled_from(["", " "]))


def _to_sizes(n):
    @settings(max_examples=n, **FAST)
    @given(SIZES)
    def run(text):
        value = _one_line_error(lambda: parse_target(text))
        if value is not None:
            assert 0 < value < math.inf

    run()


def test_fuzz_to_sizes():
    _to_sizes(CASES["to_sizes"][0])


def test_to_sizes_that_are_not_finite_positive_are_one_line_errors():
    assert parse_target("3MB") == 3.0 and parse_target("800KB") == 0.8
    for text in ("inf", "1e999MB", "nan", "-1MB", "0", "three"):
        with pytest.raises(UserError, match="^--to: "):
            parse_target(text)


# ---- bigger variants --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_fuzz_every_edge_at_length(tmp_path_factory):
    _spec_tables(tmp_path_factory, CASES["spec_tables"][1])
    _spec_bytes(tmp_path_factory, CASES["spec_bytes"][1])
    _csv(tmp_path_factory, CASES["csv"][1])
    _schedules(tmp_path_factory, CASES["schedule_mutations"][1], mutated_schedules(_small_schedule()))
    _schedules(tmp_path_factory, CASES["schedule_json"][1], JSON)
    _to_sizes(CASES["to_sizes"][1])
