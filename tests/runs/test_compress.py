"""`evoforge compress`: bad input fails with one clear error and leaves nothing; a micro run writes a loadable student."""

import inspect
import json
from dataclasses import replace

import pytest

from runs.compress import CompressSettings, compress
from search.protocols import UserError

MICRO = CompressSettings(seq_length=32, population=16, generations=5, vocab_floors=2, rerank_steps=3,
                         final_steps=6, batch_size=4, max_length=32, train_snippets=40, held_out_snippets=12,
                         latency_repeats=2, static_widths=(32,), static_steps=30, static_batch_size=8,
                         latency_texts=4, peer=False, time_budget=0.0)


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory):
    import json as json_module

    import runs.compress as a
    import spaces.architecture.corpus as b

    root = tmp_path_factory.mktemp("texts")
    for i, module in enumerate((a, b, json_module, inspect)):
        (root / f"m{i}.py").write_text(inspect.getsource(module)[:5000])
    return root


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    """Teacher targets of these micro corpora go to a temporary cache, not the user's."""
    monkeypatch.setenv("EVOFORGE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def _nothing_left(parent):
    return [p.name for p in parent.iterdir()] == []


@pytest.mark.parametrize("to,message", [("0.01MB", "smaller than the smallest student"),
                                        ("tiny", "is not a size")])
def test_unreachable_or_malformed_size(tmp_path, text_dir, to, message):
    out = tmp_path / "out"
    with pytest.raises(UserError, match=message):
        compress("", to, str(text_dir), str(out), True, 1, MICRO)
    assert _nothing_left(tmp_path)


def test_missing_teacher_and_empty_data(tmp_path, text_dir):
    with pytest.raises(UserError, match="teacher"):
        compress(str(tmp_path / "no-such-model"), "3MB", str(text_dir), str(tmp_path / "out"), True, 1, MICRO)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="--data"):
        compress("", "3MB", str(empty), str(tmp_path / "out"), True, 1, MICRO)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_existing_output_is_refused(tmp_path, text_dir):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="--out"):
        compress("", "3MB", str(text_dir), str(out), True, 1, MICRO)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_search_only_writes_candidates_and_config(tmp_path, text_dir):
    out = compress("", "2MB", str(text_dir), str(tmp_path / "s"), True, 1, MICRO)
    report = json.loads((out / "report.json").read_text())
    assert report["candidates"] and all(c["size_mb"] <= 2.0 for c in report["candidates"])
    assert json.loads((out / "config.json").read_text())["model_type"] == "bert"
    from runs.compress import _space, teacher_gflops

    cap = teacher_gflops(_space("", MICRO, 1), MICRO.seq_length) / MICRO.min_speedup
    assert all(c["gflops"] <= cap for c in report["candidates"])  # the speed floor holds
    assert all(c["positions"] == MICRO.seq_length for c in report["candidates"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


def test_micro_compression_writes_the_preferred_student_and_the_front(tmp_path, text_dir):
    """Both ends of the space are trained and measured; --prefer speed writes the static table, and the report
    holds the front (table + plot) and per-domain figures."""
    from spaces.architecture.static import StaticEncoder

    out = compress("", "1MB", str(text_dir), str(tmp_path / "student"), False, 1, MICRO, prefer="speed")
    report = json.loads((out / "report.json").read_text())
    students = {s["kind"]: s for s in report["students"]}
    assert set(students) == {"transformer", "static"}
    static, transformer = students["static"], students["transformer"]
    assert static["latency_ms"] < transformer["latency_ms"]  # a table lookup against a transformer layer
    assert report["student"]["name"] == static["name"] and static["name"].startswith("static W32 V")
    assert all(s["file_mb"] <= 1.0 and set(s["domains"]) == {"data"} for s in report["students"])
    for key in ("gflops", "parameters", "latency_ratio_b1", "latency_ratio_b32", "mean_cosine", "top1_agreement"):
        assert transformer[key] is not None
    assert (out / "model.safetensors").stat().st_size / 1e6 == pytest.approx(static["file_mb"])
    assert StaticEncoder(out).encode(["def f(x): return x"]).shape == (1, 384)
    assert (out / "front.png").stat().st_size > 5000
    markdown = (out / "report.md").read_text()
    assert "(chosen)" in markdown and "cosine data" in markdown
    assert not list(tmp_path.glob(".*partial*")) and not (out / "students").exists()


def test_transformer_stage_is_skipped_when_it_cannot_fit_the_time_budget(tmp_path, text_dir):
    """A budget already spent when the static students are done: no step is timed, no transformer is trained,
    the static table is written and the report says why."""
    settings = replace(MICRO, time_budget=1e-3)
    out = compress("", "1MB", str(text_dir), str(tmp_path / "student"), False, 1, settings)
    report = json.loads((out / "report.json").read_text())
    assert [s["kind"] for s in report["students"]] == ["static"]
    stage = report["transformer_stage"]
    assert stage["run"] is False and stage["step_seconds"] == {} and stage["predicted_seconds"] is None
    assert "final_training" not in report["timings"] and "rerank" not in report["timings"]


def test_transformer_stage_prediction_times_each_candidate(text_dir):
    """With room in the budget every candidate is timed and the stage runs; a budget the prediction overruns
    stops it."""
    from objectives.distillation import prepare_data
    from runs.compress import Candidate, plan_transformer_stage
    from spaces.architecture.corpus import CorpusConfig
    from spaces.architecture.shapes import Shape

    data = prepare_data("", str(text_dir), CorpusConfig(max_train=40, max_held_out=12), 32)
    shapes = [Shape(1, 32, 2, 64, data.plan.floor + k, 32) for k in (0, 8)]
    candidates = [Candidate(shape=s, gflops=0.0, size_mb=0.0, vocab_floor=data.plan.floor) for s in shapes]
    roomy = plan_transformer_stage(candidates, data, replace(MICRO, time_budget=1e6), 0.0, print)
    assert roomy["run"] and len(roomy["step_seconds"]) == 2
    slowest = max(roomy["step_seconds"].values())
    assert roomy["predicted_seconds"] == pytest.approx(
        MICRO.rerank_steps * sum(roomy["step_seconds"].values()) + MICRO.final_steps * slowest)
    tight = plan_transformer_stage(candidates, data, replace(MICRO, time_budget=1e6, final_steps=10**9), 0.0, print)
    assert not tight["run"] and len(tight["step_seconds"]) == 1  # the first timing already overruns


def test_micro_transformer_student_loads_with_transformers_and_sentence_transformers(tmp_path, text_dir):
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel, AutoTokenizer

    settings = replace(MICRO, static_widths=(), int8=False)   # --no-int8: float weights, loadable by both
    out = compress("", "1MB", str(text_dir), str(tmp_path / "student"), False, 1, settings)
    student = json.loads((out / "report.json").read_text())["student"]
    weights = [out / "model.safetensors", out / "2_Dense" / "model.safetensors"]
    assert sum(p.stat().st_size for p in weights if p.exists()) / 1e6 == pytest.approx(student["file_mb"])
    assert student["kind"] == "transformer" and student["file_mb"] <= 1.0
    header = json.loads((out / "model.safetensors").read_bytes()[8:][:int.from_bytes(
        (out / "model.safetensors").read_bytes()[:8], "little")])
    assert {v["dtype"] for k, v in header.items() if k != "__metadata__"} == {"F16"}  # the default dtype
    model = AutoModel.from_pretrained(out, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(out, local_files_only=True)
    assert model.config.vocab_size == len(tokenizer)
    embedding = SentenceTransformer(str(out), device="cpu", local_files_only=True).encode(["def f(x): return x"])
    assert embedding.shape == (1, 384)


def test_micro_int8_transformer_student_is_written_as_int8_and_scored_as_loaded(tmp_path, text_dir):
    """With the int8 gene on (the default), a transformer student the GA picks int8 is written as int8 rows and
    scales; the report's size is the files' and its cosine is that of the student load_student reads back."""
    from dataclasses import replace as replace_settings

    from objectives.distillation import prepare_data
    from runs.compress import corpus_config, domain_scores
    from spaces.architecture.student import embed, load_student

    settings = replace_settings(MICRO, static_widths=())
    out = compress("", "1MB", str(text_dir), str(tmp_path / "student"), False, 1, settings)
    report = json.loads((out / "report.json").read_text())
    student = report["student"]
    assert student["kind"] == "transformer" and student["name"].endswith(" int8")
    weights = [p for p in (out / "model.safetensors", out / "2_Dense" / "model.safetensors") if p.exists()]
    assert sum(p.stat().st_size for p in weights) / 1e6 == pytest.approx(student["file_mb"])
    header = json.loads((out / "model.safetensors").read_bytes()[8:][:int.from_bytes(
        (out / "model.safetensors").read_bytes()[:8], "little")])
    assert header["encoder.layer.0.intermediate.dense.weight"]["dtype"] == "I8"
    assert header["encoder.layer.0.intermediate.dense.weight_scale"]["dtype"] == "F16"
    assert json.loads((out / "config.json").read_text())["evoforge_int8"] is True
    model, tokenizer = load_student(out)
    data = prepare_data("", str(text_dir), corpus_config(settings), settings.max_length, settings.seed)
    scores = domain_scores(lambda t: embed(model, tokenizer, t, settings.seq_length), data)
    assert scores["mean_cosine"] == pytest.approx(student["mean_cosine"], abs=1e-5)


def test_teacher_without_weights_is_refused_before_any_work(tmp_path, text_dir):
    from spaces.architecture.teacher import resolve_teacher

    folder = tmp_path / "teacher"
    folder.mkdir()
    for name in ("config.json", "vocab.txt", "tokenizer.json"):
        (folder / name).write_bytes((resolve_teacher("") / name).read_bytes())
    with pytest.raises(UserError, match="has no weights"):
        compress(str(folder), "3MB", str(text_dir), str(tmp_path / "out"), True, 1, MICRO)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["teacher"]


@pytest.mark.slow
def test_rerank_on_ray_workers_matches_in_process(tmp_path, text_dir):
    """The re-ranking gives the same scores on 2 Ray workers as in-process (training is a function of the seed)."""
    from objectives.distillation import prepare_data
    from runs.compress import rerank, search_shapes
    from spaces.architecture.corpus import CorpusConfig

    settings = replace(MICRO, threads=1)
    data = prepare_data("", str(text_dir), CorpusConfig(max_train=settings.train_snippets,
                                                        max_held_out=settings.held_out_snippets),
                        settings.max_length)
    candidates, _ = search_shapes("", 1.0, data.plan.floor, settings)
    local = rerank(candidates, "", str(text_dir), settings, 1, data)
    remote = rerank(candidates, "", str(text_dir), settings, 2, data)
    assert [(c.shape, round(c.fidelity, 5)) for c in local] == [(c.shape, round(c.fidelity, 5)) for c in remote]


@pytest.mark.parametrize("args,message", [(["--dtype", "int4"], "--dtype"), (["--steps", "0"], "--steps"),
                                          (["--prefer", "smallest"], "--prefer"),
                                          (["--time-budget", "-5"], "--time-budget"),
                                          (["--teacher-precision", "fp8"], "--teacher-precision")])
def test_cli_rejects_bad_dtype_and_steps(args, message):
    import subprocess
    import sys

    script = f"from runs.cli import main; main(['compress', '--to', '3MB', *{args!r}])"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: " + message), result.stderr


def test_ray_workers_rerank_on_the_commands_own_corpus_and_targets():
    """With --workers > 1 the re-ranking objective is rebuilt in each Ray worker from its config: it must cut the
    same snippets (the command's shorter training snippets) and use the same teacher precision, or the workers
    train on other text and recompute the teacher's targets instead of reading the driver's from the cache."""
    from runs.compress import corpus_config, distillation_objective

    settings = replace(CompressSettings(), train_chunk_chars=120, teacher_precision="int8")
    objective = distillation_objective("all-MiniLM-L6-v2", None, settings, 1000)
    assert objective.corpus_config() == corpus_config(settings)
    assert objective.corpus_config().train_chunk_chars == 120
    assert objective.config.teacher_precision == "int8"
