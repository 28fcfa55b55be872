"""`evoforge compress`: a pre-trained encoder to a student of at most N MB, by GA shape search and distillation.

Steps (Compressor, shared/papers.md, plus the re-ranking it lacks, plus the static end of the space):
  1. the corpus (code and English prose by default, each with its own held-out set) and the teacher's vocabulary
     plan give the smallest vocabulary; a limit no shape can meet stops here;
  2. the GA (search.engine) maximises GFLOPs subject to file size <= N MB and GFLOPs <= the teacher's / 4 (the
     speed the paper aims for; without it the GA fills a large budget with depth), once per vocabulary floor (the floor
     grows geometrically from the corpus's minimum: GFLOPs alone would starve the vocabulary) and per depth cap
     (uncapped, and 1 layer: GFLOPs alone always buys depth, which learns slowest); each run's best is a candidate;
     `int8` is a gene (matrices stored as int8 rows with a scale each: twice the parameters per MB; a candidate
     that has it is scored on its rounded weights and written that way);
  3. each candidate gets a short fixed-budget distillation; the best held-out cosine wins (the re-ranking);
  4. the winner is distilled for the full budget (checkpoints, progress bar), saved, re-loaded from disk and
     measured against the teacher: file size, GFLOPs, parameters, CPU latency at batch 1 and 32, mean cosine and
     top-1 retrieval agreement on held-out text, per domain;
  5. the static students of the space (zero layers: an int8 token table per width in `static_widths`, with as
     many of the corpus's tokens as fit) are distilled too (seconds each) and measured the same way; they are
     trained first, and steps 3-4 run only when their time, predicted from a few timed steps, fits the
     `time_budget` (on 2 cores at 3 MB they took 607 of 1,058 s and lost to the static table);
  6. the finished students form a front of fidelity against measured batch-1 latency (text to vector), with
     model2vec's student of the same size as a named row when model2vec is installed; `--prefer` picks the one
     written out (spaces/architecture/front.py).
Output goes to a hidden sibling directory renamed into place at the end, so a failed run leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from search.protocols import Context, UserError

MB = 10**6


@dataclass(frozen=True)
class CompressSettings:
    """Budgets of one compression. Steps are optimizer updates of `batch_size` snippets."""

    seq_length: int = 128          # tokens per input for GFLOPs, and the student's position count
    dtype: str = "float16"         # dtype the student is saved in: half the bytes buy twice the parameters, and
                                   # the fidelity is measured on the saved (rounded) weights
    int8: bool = True              # the int8 gene: weight matrices may be stored as int8 rows with a scale each
                                   # (half of float16's bytes; spaces/architecture/int8.py); off = every student
                                   # in `dtype`, so transformers and sentence-transformers load it directly
    population: int = 64           # GA population per vocabulary floor
    generations: int = 100         # GA generations per vocabulary floor
    vocab_floors: int = 3          # GA runs, one per vocabulary floor: minimum x 1, x growth, x growth^2 ...
    floor_growth: int = 4
    min_speedup: float = 4.0       # the GA keeps GFLOPs <= teacher's / this (0 = no limit): maximising GFLOPs
                                   # alone fills 10 MB with a 6-layer student only 1.8x faster than the teacher
    layer_caps: tuple[int, ...] = (1,)  # extra GA runs per floor with depth capped (shallow-wide candidates)
    rerank_steps: int = 100        # distillation steps per candidate when re-ranking
    final_steps: int = 2000        # distillation steps of the chosen transformer student
    batch_size: int = 32
    learning_rate: float = 2e-3
    init: str = "token_states"     # how transformer students start (objectives.distillation.INITS): from the
                                   # teacher's output per token, +0.010 code / +0.019 prose held-out cosine over
                                   # its input embeddings after 1,000 steps (bench/README.md)
    max_length: int = 96           # teacher tokens per snippet (targets); students read up to seq_length
    train_snippets: int = 26000    # all domains together; the teacher's pass over them is the fixed cost:
                                   # with batches by token count it runs twice as fast, so twice the snippets
                                   # of 13,000 (held-out 3 MB +0.004 code / +0.006 prose, 490 s wall quietly)
    train_chunk_chars: int = 100   # characters per training snippet (held-out snippets stay 200): at the same
                                   # teacher tokens, 1.7x the targets; static W320 on a file-level validation
                                   # split +0.009 code / +0.012 prose over 200-character snippets (bench/README.md)
    held_out_snippets: int = 300   # per domain
    teacher_precision: str = "auto"     # of the training targets: bfloat16 where the CPU multiplies it natively
                                        # (AMX: 3x the snippets per second, cosine 0.99995 to float32's), else
                                        # float32; "int8" is 1.6x cheaper but at cosine 0.973, and int8 targets of
                                        # twice the snippets held out no better (bench/README.md)
    static_widths: tuple[int, ...] = (64, 128, 320)  # static students tried (int8 tables; empty = none); W256
                                   # sat between W128 and W320 at W320's latency (the tokenizer dominates)
    static_steps: int = 300        # distillation steps of each static student: the table is data-limited (on a
                                   # validation split, 600 steps of 64 or 450 of 128 add at most 0.002)
    static_batch_size: int = 128
    static_lr_scale: float = 10.0  # static students train at this x `learning_rate`
    static_anchor: float = 3e-2    # pull of each static row toward its start (static.StaticTraining.anchor):
                                   # validation split +0.005 code / +0.015 prose (W320, 8,000 snippets)
    latency_texts: int = 100       # single held-out texts timed for the batch-1 text-to-vector latency
    peer: bool = True              # add model2vec's student of the same size to the front when it is installed
    threads: int = 0               # torch CPU threads for the teacher and training; 0 = all cores (on a CPU shared
                                   # with other jobs, 1 can be several times faster)
    latency_threads: int = 1       # torch CPU threads when timing teacher and student (the same for both)
    latency_repeats: int = 20
    time_budget: float = 600.0     # seconds the whole command aims for (0 = no limit): the transformer stage (the
                                   # re-ranking and the final distillation) runs only when its time, predicted from
                                   # a few timed steps of each candidate, fits what the static students left. On 2
                                   # cores at 3 MB it took 607 of 1,058 s and its student lost to the static table on
                                   # both domains (bench/README.md)
    probe_steps: int = 3           # training steps timed per candidate for that prediction
    seed: int = 0


@dataclass(frozen=True)
class Candidate:
    shape: Any
    gflops: float
    size_mb: float
    vocab_floor: int
    layer_cap: int = 0             # the GA run's depth cap (0 = the teacher's depth)
    fidelity: float | None = None


def parse_target(to: str) -> float:
    from objectives.model_size import parse_megabytes

    return parse_megabytes(to, "--to")


def _space(teacher: str, settings: CompressSettings, min_vocab: int, max_layers: int = 0):
    from spaces.architecture.shapes import TransformerShapeSpace

    return TransformerShapeSpace(TransformerShapeSpace.Config(teacher=teacher, seq_length=settings.seq_length,
                                                              min_vocab=min_vocab, max_layers=max_layers,
                                                              max_positions=settings.seq_length,
                                                              int8=settings.int8),
                                 Context(seed=settings.seed))


def smallest_size(space, dtype: str) -> float:
    """MB of the cheapest student in `space` (headers included)."""
    from objectives.model_size import student_size

    return student_size(space.bounds.smallest(), int(space.teacher_config["hidden_size"]), dtype).file_mb_bound


def search_shapes(teacher: str, limit_mb: float, vocab_floor: int, settings: CompressSettings
                  ) -> tuple[list[Candidate], float]:
    """The GA's best shape per vocabulary floor and depth cap (the feasible ones), and the seconds all searches
    took. Depth caps add shallow-wide candidates: max GFLOPs alone always spends the budget on depth, and deep
    narrow students learn slower under a short distillation budget (bench/README.md)."""
    from objectives.gflops import GFlops
    from objectives.model_size import ModelSize
    from search.combined import CombinedObjective
    from search.engine import SearchSettings, evolve

    began = time.perf_counter()
    candidates: list[Candidate] = []
    seen = set()
    first = _space(teacher, settings, vocab_floor)
    max_vocab = int(first.bounds.max_vocab)
    max_gflops = teacher_gflops(first, settings.seq_length) / settings.min_speedup if settings.min_speedup else 0.0
    runs = [(k, cap) for k in range(settings.vocab_floors) for cap in (0, *settings.layer_caps)]
    for k, cap in runs:
        floor = vocab_floor * settings.floor_growth**k
        space = _space(teacher, settings, min(floor, max_vocab), cap)
        if smallest_size(space, settings.dtype) > limit_mb:
            continue
        size = ModelSize(ModelSize.Config(limit_mb=limit_mb, dtype=settings.dtype, objective=False), space,
                         space.context)
        objective = CombinedObjective([GFlops(GFlops.Config(max_gflops=max_gflops), space, space.context), size])
        state = evolve(space, objective, SearchSettings(population=settings.population,
                                                        generations=settings.generations, hall_of_fame=1),
                       seed=settings.seed + k)
        if not state.front:
            continue
        best = state.front[0]
        if best.key in seen:
            continue
        seen.add(best.key)
        candidates.append(Candidate(shape=best.genome, gflops=best.evaluation.values[0],
                                    size_mb=best.evaluation.extras["size_mb"], vocab_floor=floor,
                                    layer_cap=cap))
    return candidates, time.perf_counter() - began


def teacher_shape(config: dict):
    """The teacher's own sizes as a `Shape` (from its config.json)."""
    from spaces.architecture.shapes import Shape

    return Shape(config["num_hidden_layers"], config["hidden_size"], config["num_attention_heads"],
                 config["intermediate_size"], config["vocab_size"], config["max_position_embeddings"])


def teacher_gflops(space, seq_length: int) -> float:
    from objectives.gflops import forward_flops

    shape = teacher_shape(space.teacher_config)
    return forward_flops(shape, seq_length, shape.hidden) / 1e9


def hand_picked_shape(teacher: str, limit_mb: float, vocab: int, settings: CompressSettings):
    """The baseline: one layer, the teacher's head size and 4x feed-forward ratio, as wide as fits the limit."""
    from objectives.model_size import student_size
    from spaces.architecture.shapes import Shape

    space = _space(teacher, settings, vocab)
    b = space.bounds
    embedding_dim = int(space.teacher_config["hidden_size"])
    head_dim = max(1, b.max_hidden // b.max_heads)
    best = None
    for hidden in b.widths(b.max_hidden):
        heads = max(h for h in b.head_options(int(hidden)) if h <= max(1, int(hidden) // head_dim))
        shape = Shape(1, int(hidden), heads, min(4 * int(hidden), b.max_intermediate), vocab, b.min_positions)
        if student_size(shape, embedding_dim, settings.dtype).file_mb_bound <= limit_mb:
            best = shape
    if best is None:
        raise UserError(f"--to: {limit_mb:g} MB holds no one-layer student with {vocab} tokens")
    return best


def corpus_config(settings: CompressSettings):
    """How the command cuts its corpus (the re-ranking objective on Ray workers cuts the same one)."""
    from spaces.architecture.corpus import CorpusConfig

    return CorpusConfig(max_train=settings.train_snippets, max_held_out=settings.held_out_snippets,
                        train_chunk_chars=settings.train_chunk_chars)


def distillation_objective(teacher: str, data_dir: str | None, settings: CompressSettings, vocab_floor: int):
    """The re-ranking objective: a short distillation on the command's own corpus and targets."""
    from objectives.distillation import Distillation

    space = _space(teacher, settings, vocab_floor)
    return Distillation(Distillation.Config(
        data=data_dir or "", steps=settings.rerank_steps, batch_size=settings.batch_size,
        learning_rate=settings.learning_rate, max_length=settings.max_length,
        student_max_length=settings.seq_length, train_snippets=settings.train_snippets,
        held_out_snippets=settings.held_out_snippets, train_chunk_chars=settings.train_chunk_chars,
        teacher_precision=settings.teacher_precision, init=settings.init, threads=settings.threads), space,
        Context(seed=settings.seed))


def rerank(candidates: list[Candidate], teacher: str, data_dir: str | None, settings: CompressSettings,
           workers: int, distillation_data) -> list[Candidate]:
    """Short distillation of each candidate (in parallel on Ray with `workers` > 1); best held-out cosine first."""
    from search.evaluation import LocalEvaluator

    if len(candidates) <= 1:
        return candidates
    objective = distillation_objective(teacher, data_dir, settings, distillation_data.plan.floor)
    if workers > 1:
        from search.ray_backend import RayEvaluator

        evaluator = RayEvaluator(objective, workers=workers)  # workers read the teacher targets from the disk cache
    else:
        objective._data = distillation_data
        evaluator = LocalEvaluator(objective)
    try:
        scores = evaluator.evaluate([c.shape for c in candidates])
    finally:
        evaluator.close()
    ranked = [replace(c, fidelity=s.values[0] if s.failed is None else float("-inf"))
              for c, s in zip(candidates, scores)]
    return sorted(ranked, key=lambda c: -c.fidelity)


def measure(student_dir: Path, data, settings: CompressSettings) -> dict[str, Any]:
    """The report's figures for a saved student, loaded back from disk, against the teacher."""
    import torch

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(settings.latency_threads or _all_threads())
    try:
        return _measure(student_dir, data, settings)
    finally:
        torch.set_num_threads(previous_threads)


def _measure(student_dir: Path, data, settings: CompressSettings) -> dict[str, Any]:
    from objectives.gflops import forward_flops
    from spaces.architecture.fidelity import encode_latency, forward_latency
    from spaces.architecture.static import StaticEncoder, is_static, static_flops
    from spaces.architecture.student import embed, load_student, weight_files

    teacher = data.teacher
    texts = data.corpus.held_out
    length = settings.seq_length
    file_bytes = sum(p.stat().st_size for p in weight_files(student_dir))
    if is_static(student_dir):
        encoder = StaticEncoder(student_dir)
        shape, encode = encoder.shape, (lambda t: encoder.encode(t, length))
        row: dict[str, Any] = {"kind": "static", "parameters": int(encoder.table.size + encoder.bias.size + (
            0 if encoder.weight is None else encoder.weight.size)),
            "gflops": static_flops(shape, length, teacher.embedding_dim) / 1e9}
    else:
        from spaces.architecture.shapes import Shape

        student, tokenizer = load_student(student_dir)
        config = student.encoder.config
        shape = Shape(config.num_hidden_layers, config.hidden_size, config.num_attention_heads,
                      config.intermediate_size, config.vocab_size, config.max_position_embeddings,
                      bool(getattr(config, "evoforge_int8", False)))
        encode = lambda t: embed(student, tokenizer, t, length)  # noqa: E731
        row = {"kind": "transformer", "parameters": sum(p.numel() for p in student.parameters()),
               "gflops": forward_flops(shape, length, teacher.embedding_dim) / 1e9}
        for batch in (1, 32):  # forward pass only, tokenized inputs (the Compressor paper's measure)
            t = forward_latency(teacher.model, teacher.tokenizer, texts, batch, length, settings.latency_repeats)
            s = forward_latency(student, tokenizer, texts, batch, length, settings.latency_repeats)
            row[f"teacher_latency_b{batch}_ms"] = 1e3 * t
            row[f"student_latency_b{batch}_ms"] = 1e3 * s
            row[f"latency_ratio_b{batch}"] = t / s
    scores = domain_scores(encode, data)
    row.update({"shape": asdict(shape), "name": shape.describe(), "file_mb": file_bytes / MB,
                "mean_cosine": scores["mean_cosine"], "top1_agreement": scores["top1_agreement"],
                "domains": {d: v for d, v in scores.items() if isinstance(v, dict)},
                "latency_ms": 1e3 * encode_latency(encode, texts, settings.latency_texts)})
    return row


def domain_scores(encode, data) -> dict[str, Any]:
    """Held-out fidelity per domain (and averaged over domains) of an `encode(texts) -> vectors` function."""
    from spaces.architecture.fidelity import domain_fidelity

    return domain_fidelity(encode, data.teacher_embed, data.corpus.domain_held_out(), data.held_out_targets)


def teacher_latency_ms(data, settings: CompressSettings) -> float:
    """The teacher's batch-1 latency from text to vector (ms), measured like the students' (`latency_ms`)."""
    import torch

    from spaces.architecture.fidelity import encode_latency

    previous = torch.get_num_threads()
    torch.set_num_threads(settings.latency_threads or _all_threads())
    try:
        return 1e3 * encode_latency(lambda t: data.teacher.embed(t, data.max_length), data.corpus.held_out,
                                    settings.latency_texts)
    finally:
        torch.set_num_threads(previous)


def static_shapes(limit_mb: float, plan, embedding_dim: int, settings: CompressSettings) -> list:
    """Per width in `static_widths`, the static student (int8 unless `int8` is off) with the most corpus tokens (at most all the corpus
    uses) whose file fits `limit_mb`: the zero-layer slice of the space, enumerated (a handful of points)."""
    from objectives.model_size import student_size
    from spaces.architecture.shapes import Shape

    def fits(width: int, vocab: int) -> bool:
        shape = Shape(0, width, 1, 0, vocab, 0, settings.int8)
        return student_size(shape, embedding_dim, settings.dtype).file_mb_bound <= limit_mb

    shapes = []
    for width in settings.static_widths:
        lo, hi = plan.floor, plan.floor + plan.used
        if not fits(width, lo):
            continue
        while lo < hi:  # the largest vocabulary that fits
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if fits(width, mid) else (lo, mid - 1)
        shapes.append(Shape(0, width, 1, 0, lo, 0, settings.int8))
    return shapes


def plan_transformer_stage(candidates: list[Candidate], data, settings: CompressSettings, elapsed: float,
                           log, trained: int = 1) -> dict[str, Any]:
    """Whether the transformer stage (re-ranking every candidate, then the winner's full distillation) fits the
    time budget, `elapsed` seconds of which are spent; with no other student `trained`, it runs regardless. Each
    candidate trains `probe_steps` steps, timed, and the
    stage is predicted at `rerank_steps` x the candidates' step times + `final_steps` x the slowest one's. Probing
    stops once the part predicted so far overruns the budget. The measurements after the stage are not predicted."""
    from objectives.distillation import TrainingConfig, train_student

    stage: dict[str, Any] = {"run": bool(candidates), "budget_seconds": settings.time_budget,
                             "elapsed_seconds": elapsed, "step_seconds": {}, "predicted_seconds": None}
    if not candidates or settings.time_budget <= 0 or not trained:
        return stage
    began = time.perf_counter()
    config = TrainingConfig(steps=settings.probe_steps, batch_size=settings.batch_size,
                            learning_rate=settings.learning_rate, max_length=settings.seq_length,
                            threads=settings.threads, seed=settings.seed)
    steps: list[float] = []
    for c in candidates:
        if elapsed + time.perf_counter() - began >= settings.time_budget:
            break
        _, _, result = train_student(c.shape, data, config, init=settings.init)
        steps.append(result.seconds / result.steps)
        stage["step_seconds"][c.shape.describe()] = steps[-1]
        rerank_seconds = settings.rerank_steps * sum(steps) if len(candidates) > 1 else 0.0
        stage["predicted_seconds"] = rerank_seconds + settings.final_steps * max(steps)
        if elapsed + time.perf_counter() - began + stage["predicted_seconds"] > settings.time_budget:
            break
    stage["probe_seconds"] = time.perf_counter() - began
    left = settings.time_budget - elapsed - stage["probe_seconds"]
    stage["run"] = len(steps) == len(candidates) and stage["predicted_seconds"] <= left
    if not stage["run"]:
        predicted = ("no time left to time a step" if stage["predicted_seconds"] is None else
                     f"predicted at least {stage['predicted_seconds']:.0f} s")
        log(f"transformer stage skipped: {predicted}, {max(left, 0.0):.0f} s of the {settings.time_budget:.0f} s "
            "time budget left (--time-budget 0 runs it)")
    return stage


def train_static_students(shapes, data, settings: CompressSettings, directory: Path, log) -> list[Path]:
    """Distil and save each static shape under `directory`; returns their folders. Each table starts from the
    teacher's token states in context (static.build_static) and is pulled back toward them (`static_anchor`)."""
    from spaces.architecture.static import StaticTraining, build_static, distill_static, save_static
    from spaces.architecture.vocabulary import reduce_vocabulary, student_tokenizer

    config = StaticTraining(steps=settings.static_steps, batch_size=settings.static_batch_size,
                            learning_rate=settings.learning_rate * settings.static_lr_scale,
                            anchor=settings.static_anchor, max_length=settings.seq_length, threads=settings.threads,
                            seed=settings.seed)
    folders = []
    for k, shape in enumerate(shapes):
        began = time.perf_counter()
        vocabulary = reduce_vocabulary(data.teacher.tokenizer, data.plan, shape.vocab)
        tokenizer = student_tokenizer(data.teacher.tokenizer, vocabulary, settings.seq_length)
        student = build_static(shape, data.teacher, vocabulary, data.train_tokens)
        distill_static(student, tokenizer, data.corpus.train, data.train_targets, config)
        folder = directory / f"static-{k}"
        save_static(student, tokenizer, folder, shape, settings.dtype)
        folders.append(folder)
        log(f"static student {shape.describe()}: {time.perf_counter() - began:.0f} s")
    return folders


def peer_row(data, limit_mb: float, settings: CompressSettings) -> dict[str, Any] | None:
    """model2vec's static model of the same teacher at the most PCA dimensions whose int8 file fits `limit_mb`,
    its vectors mapped to the teacher's by least squares on 4,000 training snippets; None without model2vec."""
    try:
        from model2vec.distill import distill
    except ImportError:
        return None
    import tempfile

    from spaces.architecture.fidelity import encode_latency

    vocab = sum(1 for t in data.teacher.tokenizer.get_vocab() if not t.startswith("[unused"))
    dims = int(limit_mb * MB * 0.99 / vocab) // 8 * 8
    if dims < 8:
        return None
    began = time.perf_counter()
    model = distill(model_name=str(data.teacher.path), pca_dims=dims, quantize_to="int8")
    build = time.perf_counter() - began
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        file_mb = sum(p.stat().st_size for p in Path(folder).glob("*.safetensors")) / MB
    train = list(data.corpus.train[:4000])
    x = model.encode(train)
    mapping = np.linalg.lstsq(np.hstack([x, np.ones((len(x), 1), np.float32)]), data.train_targets[: len(train)],
                              rcond=None)[0]

    def encode(texts):
        return model.encode(list(texts)) @ mapping[:-1] + mapping[-1]

    scores = domain_scores(encode, data)
    return {"kind": "model2vec", "name": f"model2vec {dims} dims int8", "file_mb": file_mb,
            "build_seconds": build, "mean_cosine": scores["mean_cosine"],
            "top1_agreement": scores["top1_agreement"],
            "domains": {d: v for d, v in scores.items() if isinstance(v, dict)},
            "latency_ms": 1e3 * encode_latency(encode, data.corpus.held_out, settings.latency_texts)}


def teacher_figures(data, settings: CompressSettings) -> dict[str, Any]:
    from objectives.gflops import forward_flops

    shape = teacher_shape(data.teacher.config)
    files = [p for p in data.teacher.path.glob("*.safetensors")] or [p for p in data.teacher.path.glob("*.bin")]
    return {"path": str(data.teacher.path), "file_mb": sum(p.stat().st_size for p in files) / MB,
            "parameters": sum(p.numel() for p in data.teacher.model.parameters()),
            "gflops": forward_flops(shape, settings.seq_length, shape.hidden) / 1e9}


def _output_dir(out: str | None, teacher: str, limit_mb: float) -> Path:
    name = Path(teacher).name if teacher and Path(teacher).is_dir() else "all-MiniLM-L6-v2"
    path = Path(out) if out else Path(f"{name}-{limit_mb:g}MB")
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UserError(f"--out: {str(path)!r} already exists and is not empty; remove it or choose another")
    return path


def compress(teacher: str, to: str, data: str | None, out: str | None, search_only: bool, workers: int,
             settings: CompressSettings = CompressSettings(), log=print, prefer: str = "fidelity") -> Path:
    """Run the whole compression; returns the output directory (the preferred student + report.json, report.md
    and front.png)."""
    from spaces.architecture.front import check_preference, pareto_front, pick, plot_front

    limit_mb = parse_target(to)
    check_preference(prefer)
    if workers < 1:
        raise UserError(f"--workers: {workers} must be at least 1")
    # torch and transformers take seconds to import: after the checks of the arguments
    from objectives.distillation import TrainingConfig, prepare_data, train_student
    from spaces.architecture.corpus import CorpusConfig, load_corpus
    from spaces.architecture.student import save_student
    from spaces.architecture.teacher import load_teacher, require_weights, resolve_teacher
    from spaces.architecture.vocabulary import plan_vocabulary

    require_weights(resolve_teacher(teacher))  # a missing teacher or one without weights fails before any work
    target = _output_dir(out, teacher, limit_mb)
    began = time.perf_counter()
    corpus = load_corpus(data, corpus_config(settings), settings.seed)
    loaded = load_teacher(teacher)
    plan = plan_vocabulary(loaded.tokenizer, corpus.train)
    smallest = smallest_size(_space(teacher, settings, plan.floor), settings.dtype)
    statics = static_shapes(limit_mb, plan, loaded.embedding_dim, settings)
    if smallest > limit_mb and not statics:
        raise UserError(f"--to: {limit_mb:g} MB is smaller than the smallest student this teacher and corpus allow "
                        f"({smallest:.3f} MB: one layer, width 16, {plan.floor} tokens); use --to {smallest:.2f}MB "
                        "or more")
    import torch

    torch.set_num_threads(settings.threads or _all_threads())
    held = {d: len(t) for d, t in corpus.domain_held_out().items()}
    log(f"corpus: {len(corpus.train)} training snippets, held out {held} from {corpus.source}")
    candidates, search_seconds = (search_shapes(teacher, limit_mb, plan.floor, settings) if smallest <= limit_mb
                                  else ([], 0.0))
    for c in candidates:
        log(f"GA (vocabulary >= {c.vocab_floor}, layers <= {c.layer_cap or 'teacher'}): {c.shape.describe()}  {c.gflops:.4f} GFLOPs  {c.size_mb:.3f} MB")
    for shape in statics:
        log(f"static: {shape.describe()}")
    log(f"search: {search_seconds:.1f} s")
    report: dict[str, Any] = {"teacher": str(loaded.path), "target_mb": limit_mb, "mb": "10^6 bytes",
                              "prefer": prefer, "settings": asdict(settings), "search_seconds": search_seconds,
                              "corpus": {"source": corpus.source, "train": len(corpus.train), "held_out": held},
                              "candidates": [_candidate_row(c) for c in candidates],
                              "static_candidates": [s.describe() for s in statics]}
    staging = target.parent / f".{target.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    previous = _exit_on_sigterm()
    try:
        if not search_only:
            timings: dict[str, float] = {}
            mark = time.perf_counter()
            data_ = prepare_data(loaded, data, CorpusConfig(), settings.max_length, settings.seed, corpus=corpus,
                                 teacher_precision=settings.teacher_precision)
            timings["teacher_targets"] = time.perf_counter() - mark
            # Static students first: seconds each, and what the transformer stage must beat to be worth its time.
            mark = time.perf_counter()
            folders = train_static_students(statics, data_, settings, staging / "students", log)
            timings["static_training"] = time.perf_counter() - mark
            stage = plan_transformer_stage(candidates, data_, settings, time.perf_counter() - began, log,
                                           len(folders))
            report["transformer_stage"] = stage
            if stage["run"]:
                mark = time.perf_counter()
                ranked = rerank(candidates, teacher, data, settings, workers, data_)
                timings["rerank"] = time.perf_counter() - mark
                report["candidates"] = [_candidate_row(c) for c in ranked]
                chosen = ranked[0]
                log(f"transformer: {chosen.shape.describe()}" + (f" (re-rank cosine {chosen.fidelity:.4f})"
                                                                 if chosen.fidelity is not None else ""))
                config = TrainingConfig(steps=settings.final_steps, batch_size=settings.batch_size,
                                        learning_rate=settings.learning_rate, max_length=settings.seq_length,
                                        threads=settings.threads, seed=settings.seed, checkpoint_every=100,
                                        progress=True)
                student, tokenizer, result = train_student(chosen.shape, data_, config, init=settings.init,
                                                           checkpoint_dir=staging / "checkpoints")
                shutil.rmtree(staging / "checkpoints", ignore_errors=True)
                save_student(student, tokenizer, staging / "students" / "transformer", settings.dtype,
                             settings.seq_length, int8=chosen.shape.int8)
                folders.insert(0, staging / "students" / "transformer")
                timings["final_training"] = result.seconds
                report["training"] = {"steps": result.steps, "seconds": result.seconds,
                                      "snippets_per_s": result.snippets_per_s, "tokens_per_s": result.tokens_per_s,
                                      "final_loss": result.final_loss}
            mark = time.perf_counter()
            report["teacher_figures"] = teacher_figures(data_, settings)
            report["teacher_figures"]["latency_ms"] = teacher_latency_ms(data_, settings)
            rows = []
            for folder in folders:
                row = measure(folder, data_, settings)
                if row["file_mb"] > limit_mb:
                    raise RuntimeError(f"student file is {row['file_mb']:.4f} MB, over {limit_mb} MB")
                rows.append((folder, row))
            timings["measure"] = time.perf_counter() - mark
            mark = time.perf_counter()
            peer = peer_row(data_, limit_mb, settings) if settings.peer else None
            timings["model2vec"] = time.perf_counter() - mark
            chosen_row = pick([r for _, r in rows], prefer)
            folder = next(f for f, r in rows if r is chosen_row)
            for item in folder.iterdir():
                item.rename(staging / item.name)
            shutil.rmtree(staging / "students", ignore_errors=True)
            report["student"] = chosen_row
            report["students"] = [r for _, r in rows]
            report["front"] = [r["name"] for r in pareto_front([r for _, r in rows])]
            report["peer"] = peer
            report["timings"] = timings
            plot_front([r for _, r in rows] + ([peer] if peer else []), chosen_row, staging / "front.png",
                       f"{Path(str(loaded.path)).name} under {limit_mb:g} MB: fidelity vs latency")
            log(f"chosen (--prefer {prefer}): {chosen_row['name']}  cosine {chosen_row['mean_cosine']:.4f}  "
                f"{chosen_row['latency_ms']:.3f} ms")
        else:
            best = max(candidates, key=lambda c: c.gflops).shape if candidates else statics[-1]
            (staging / "config.json").write_text(_space(teacher, settings, plan.floor).emit(best, "json"))
        report["total_seconds"] = time.perf_counter() - began
        (staging / "report.json").write_text(json.dumps(report, indent=2, default=str))
        (staging / "report.md").write_text(report_markdown(report))
        if target.exists():
            target.rmdir()  # empty (checked above)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if not search_only:
        from spaces.architecture.certificate import certify_student

        certify_student(target, limit_mb)   # DIR/student.cert.json: files, size, figures (`evoforge verify DIR`)
    return target


def _all_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _exit_on_sigterm():
    """Turn SIGTERM (a killed job) into SystemExit so the staging directory is removed; returns the old handler."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    return signal.signal(signal.SIGTERM, handler)


def _candidate_row(c: Candidate) -> dict[str, Any]:
    return {"shape": c.shape.describe(), **asdict(c.shape), "gflops": c.gflops, "size_mb": c.size_mb,
            "vocab_floor": c.vocab_floor, "layer_cap": c.layer_cap, "rerank_cosine": c.fidelity}


def report_markdown(report: dict[str, Any]) -> str:
    lines = [f"# Compressed student (target {report['target_mb']:g} MB, MB = 10^6 bytes)", "",
             f"teacher: {report['teacher']}", f"search: {report['search_seconds']:.1f} s", ""]
    if report["candidates"]:
        lines += ["| GA candidate | GFLOPs | MB | re-rank cosine |", "|---|---|---|---|"]
        for c in report["candidates"]:
            cos = "" if c["rerank_cosine"] is None else f"{c['rerank_cosine']:.4f}"
            lines.append(f"| {c['shape']} | {c['gflops']:.4f} | {c['size_mb']:.3f} | {cos} |")
    if "student" in report:
        s, t = report["student"], report["teacher_figures"]
        domains = list(s["domains"])
        lines += ["", f"## Front: fidelity against batch-1 latency (picked by --prefer {report['prefer']})", "",
                  "Latency: one text to its vector, tokenizing included, median, "
                  f"{report['settings']['latency_threads']} thread(s); teacher {t['latency_ms']:.2f} ms. "
                  "Cosine and top-1: held-out, per domain; `all` averages the domains. Plot: front.png.", "",
                  "| student | kind | MB | latency ms | x teacher | " + " | ".join(
                      f"cosine {d} | top-1 {d}" for d in domains) + " | cosine all | on front |",
                  "|---" * (6 + 2 * len(domains)) + "|"]
        points = report["students"] + ([report["peer"]] if report.get("peer") else [])
        for r in sorted(points, key=lambda r: r["latency_ms"]):
            name = r["name"] + (" (chosen)" if r is s or r["name"] == s["name"] else "")
            front = "yes" if r["name"] in report["front"] else ("peer" if r["kind"] == "model2vec" else "")
            lines.append(f"| {name} | {r['kind']} | {r['file_mb']:.3f} | {r['latency_ms']:.3f} | "
                         f"{t['latency_ms'] / r['latency_ms']:.1f}x | " + " | ".join(
                             f"{r['domains'][d]['mean_cosine']:.4f} | {r['domains'][d]['top1_agreement']:.3f}"
                             for d in domains) + f" | {r['mean_cosine']:.4f} | {front} |")
        lines += ["", "## Chosen student against the teacher", "", "| | teacher | student | ratio |",
                  "|---|---|---|---|",
                  f"| file MB | {t['file_mb']:.2f} | {s['file_mb']:.3f} | {t['file_mb'] / s['file_mb']:.1f}x |",
                  f"| parameters | {t['parameters']:,} | {s['parameters']:,} | "
                  f"{t['parameters'] / s['parameters']:.1f}x |",
                  f"| GFLOPs | {t['gflops']:.3f} | {s['gflops']:.4f} | {t['gflops'] / s['gflops']:.1f}x |",
                  f"| latency batch 1, text to vector (ms) | {t['latency_ms']:.2f} | {s['latency_ms']:.3f} | "
                  f"{t['latency_ms'] / s['latency_ms']:.1f}x faster |"]
        for b in (1, 32):
            if f"latency_ratio_b{b}" in s:
                lines.append(f"| CPU forward batch {b} (ms) | {s[f'teacher_latency_b{b}_ms']:.2f} | "
                             f"{s[f'student_latency_b{b}_ms']:.2f} | {s[f'latency_ratio_b{b}']:.2f}x faster |")
        lines += ["", f"mean cosine to teacher (held-out, mean over domains): {s['mean_cosine']:.4f}",
                  f"top-1 retrieval agreement (held-out halves): {s['top1_agreement']:.4f}"]
        if "training" in report:
            lines.append(f"transformer training: {report['training']['steps']} steps in "
                         f"{report['training']['seconds']:.0f} s")
        stage = report.get("transformer_stage") or {}
        if stage and not stage["run"]:
            predicted = stage["predicted_seconds"]
            lines.append(f"transformer stage skipped (time budget {stage['budget_seconds']:.0f} s, "
                         f"{stage['elapsed_seconds']:.0f} s spent before it" + (
                             f", predicted at least {predicted:.0f} s)" if predicted is not None else ")"))
        lines.append("timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in report["timings"].items()))
    lines.append(f"total: {report['total_seconds']:.0f} s")
    return "\n".join(lines) + "\n"
