"""`evoforge compress`: a pre-trained encoder to a student of at most N MB, by GA shape search and distillation.

Steps (Compressor, shared/papers.md, plus the re-ranking it lacks):
  1. the corpus and the teacher's vocabulary plan give the smallest vocabulary; a limit no shape can meet stops here;
  2. the GA (search.engine) maximises GFLOPs subject to file size <= N MB and GFLOPs <= the teacher's / 4 (the
     speed the paper aims for; without it the GA fills a large budget with depth), once per vocabulary floor (the floor
     grows geometrically from the corpus's minimum: GFLOPs alone would starve the vocabulary) and per depth cap
     (uncapped, and 1 layer: GFLOPs alone always buys depth, which learns slowest); each run's best is a candidate;
  3. each candidate gets a short fixed-budget distillation; the best held-out cosine wins (the re-ranking);
  4. the winner is distilled for the full budget (checkpoints, progress bar), saved, re-loaded from disk and
     measured against the teacher: file size, GFLOPs, parameters, CPU latency at batch 1 and 32, mean cosine and
     top-1 retrieval agreement on held-out text.
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

from search.protocols import Context, UserError

MB = 10**6


@dataclass(frozen=True)
class CompressSettings:
    """Budgets of one compression. Steps are optimizer updates of `batch_size` snippets."""

    seq_length: int = 128          # tokens per input for GFLOPs, and the student's position count
    dtype: str = "float16"         # dtype the student is saved in: half the bytes buy twice the parameters, and
                                   # the fidelity is measured on the saved (rounded) weights
    population: int = 64           # GA population per vocabulary floor
    generations: int = 100         # GA generations per vocabulary floor
    vocab_floors: int = 3          # GA runs, one per vocabulary floor: minimum x 1, x growth, x growth^2 ...
    floor_growth: int = 4
    min_speedup: float = 4.0       # the GA keeps GFLOPs <= teacher's / this (0 = no limit): maximising GFLOPs
                                   # alone fills 10 MB with a 6-layer student only 1.8x faster than the teacher
    layer_caps: tuple[int, ...] = (1,)  # extra GA runs per floor with depth capped (shallow-wide candidates)
    rerank_steps: int = 200        # distillation steps per candidate when re-ranking
    final_steps: int = 6000        # distillation steps of the chosen student
    batch_size: int = 32
    learning_rate: float = 2e-3
    max_length: int = 96           # teacher tokens per snippet (targets); students read up to seq_length
    train_snippets: int = 48000    # fidelity rose up to 48k snippets, not beyond (bench/README.md)
    held_out_snippets: int = 500
    threads: int = 0               # torch CPU threads for the teacher and training; 0 = all cores (on a CPU shared
                                   # with other jobs, 1 can be several times faster)
    latency_threads: int = 1       # torch CPU threads when timing teacher and student (the same for both)
    latency_repeats: int = 20
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
                                                              max_positions=settings.seq_length),
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


def rerank(candidates: list[Candidate], teacher: str, data_dir: str | None, settings: CompressSettings,
           workers: int, distillation_data) -> list[Candidate]:
    """Short distillation of each candidate (in parallel on Ray with `workers` > 1); best held-out cosine first."""
    from objectives.distillation import Distillation
    from search.evaluation import LocalEvaluator

    if len(candidates) <= 1:
        return candidates
    space = _space(teacher, settings, distillation_data.plan.floor)
    objective = Distillation(Distillation.Config(
        data=data_dir or "", steps=settings.rerank_steps, batch_size=settings.batch_size,
        learning_rate=settings.learning_rate, max_length=settings.max_length,
        student_max_length=settings.seq_length, train_snippets=settings.train_snippets, held_out_snippets=settings.held_out_snippets,
        threads=settings.threads), space, Context(seed=settings.seed))
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
    from spaces.architecture.fidelity import fidelity, forward_latency
    from spaces.architecture.student import embed, load_student, weight_files

    student, tokenizer = load_student(student_dir)
    teacher = data.teacher
    texts = data.corpus.held_out
    length = settings.seq_length
    scores = fidelity(lambda t: embed(student, tokenizer, t, length),
                      lambda t: teacher.embed(t, settings.max_length), texts, data.held_out_targets)
    config = student.encoder.config
    from spaces.architecture.shapes import Shape

    shape = Shape(config.num_hidden_layers, config.hidden_size, config.num_attention_heads,
                  config.intermediate_size, config.vocab_size, config.max_position_embeddings)
    file_bytes = sum(p.stat().st_size for p in weight_files(student_dir))
    row: dict[str, Any] = {
        "shape": asdict(shape),
        "file_mb": file_bytes / MB,
        "parameters": sum(p.numel() for p in student.parameters()),
        "gflops": forward_flops(shape, settings.seq_length, teacher.embedding_dim) / 1e9,
        "mean_cosine": scores.mean_cosine,
        "top1_agreement": scores.top1_agreement,
    }
    for batch in (1, 32):
        t = forward_latency(teacher.model, teacher.tokenizer, texts, batch, length, settings.latency_repeats)
        s = forward_latency(student, tokenizer, texts, batch, length, settings.latency_repeats)
        row[f"teacher_latency_b{batch}_ms"] = 1e3 * t
        row[f"student_latency_b{batch}_ms"] = 1e3 * s
        row[f"latency_ratio_b{batch}"] = t / s
    return row


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
             settings: CompressSettings = CompressSettings(), log=print) -> Path:
    """Run the whole compression; returns the output directory (student + report.json + report.md)."""
    from objectives.distillation import TrainingConfig, prepare_data, train_student
    from spaces.architecture.corpus import CorpusConfig, load_corpus
    from spaces.architecture.student import save_student
    from spaces.architecture.teacher import load_teacher, resolve_teacher
    from spaces.architecture.vocabulary import plan_vocabulary

    limit_mb = parse_target(to)
    if workers < 1:
        raise UserError(f"--workers: {workers} must be at least 1")
    resolve_teacher(teacher)  # a missing teacher fails before any work
    target = _output_dir(out, teacher, limit_mb)
    corpus = load_corpus(data, CorpusConfig(max_train=settings.train_snippets,
                                            max_held_out=settings.held_out_snippets), settings.seed)
    began = time.perf_counter()
    loaded = load_teacher(teacher)
    plan = plan_vocabulary(loaded.tokenizer, corpus.train)
    smallest = smallest_size(_space(teacher, settings, plan.floor), settings.dtype)
    if smallest > limit_mb:
        raise UserError(f"--to: {limit_mb:g} MB is smaller than the smallest student this teacher and corpus allow "
                        f"({smallest:.3f} MB: one layer, width 16, {plan.floor} tokens); use --to {smallest:.2f}MB "
                        "or more")
    import torch

    torch.set_num_threads(settings.threads or _all_threads())
    log(f"corpus: {len(corpus.train)} training and {len(corpus.held_out)} held-out snippets from {corpus.source}")
    candidates, search_seconds = search_shapes(teacher, limit_mb, plan.floor, settings)
    if not candidates:
        raise UserError(f"--to: the search found no student under {limit_mb:g} MB; raise --to")
    for c in candidates:
        log(f"GA (vocabulary >= {c.vocab_floor}, layers <= {c.layer_cap or 'teacher'}): {c.shape.describe()}  {c.gflops:.4f} GFLOPs  {c.size_mb:.3f} MB")
    log(f"search: {search_seconds:.1f} s")
    report: dict[str, Any] = {"teacher": str(loaded.path), "target_mb": limit_mb, "mb": "10^6 bytes",
                              "settings": asdict(settings), "search_seconds": search_seconds,
                              "candidates": [_candidate_row(c) for c in candidates]}
    staging = target.parent / f".{target.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    previous = _exit_on_sigterm()
    try:
        if not search_only:
            data_ = prepare_data(loaded, data, CorpusConfig(), settings.max_length, settings.seed, corpus=corpus)
            ranked = rerank(candidates, teacher, data, settings, workers, data_)
            report["candidates"] = [_candidate_row(c) for c in ranked]
            chosen = ranked[0]
            log(f"chosen: {chosen.shape.describe()}" + (f" (re-rank cosine {chosen.fidelity:.4f})"
                                                         if chosen.fidelity is not None else ""))
            config = TrainingConfig(steps=settings.final_steps, batch_size=settings.batch_size,
                                    learning_rate=settings.learning_rate, max_length=settings.seq_length,
                                    threads=settings.threads, seed=settings.seed, checkpoint_every=100,
                                    progress=True)
            student, tokenizer, result = train_student(chosen.shape, data_, config,
                                                       checkpoint_dir=staging / "checkpoints")
            shutil.rmtree(staging / "checkpoints", ignore_errors=True)
            save_student(student, tokenizer, staging, settings.dtype, settings.seq_length)
            report["training"] = {"steps": result.steps, "seconds": result.seconds,
                                  "snippets_per_s": result.snippets_per_s, "tokens_per_s": result.tokens_per_s,
                                  "final_loss": result.final_loss}
            report["teacher_figures"] = teacher_figures(data_, settings)
            report["student"] = measure(staging, data_, settings)
            if report["student"]["file_mb"] > limit_mb:
                raise RuntimeError(f"student file is {report['student']['file_mb']:.4f} MB, over {limit_mb} MB")
        else:
            best = max(candidates, key=lambda c: c.gflops)
            (staging / "config.json").write_text(_space(teacher, settings, plan.floor).emit(best.shape, "json"))
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
             f"teacher: {report['teacher']}", f"search: {report['search_seconds']:.1f} s", "",
             "| candidate | GFLOPs | MB | re-rank cosine |", "|---|---|---|---|"]
    for c in report["candidates"]:
        cos = "" if c["rerank_cosine"] is None else f"{c['rerank_cosine']:.4f}"
        lines.append(f"| {c['shape']} | {c['gflops']:.4f} | {c['size_mb']:.3f} | {cos} |")
    if "student" in report:
        s, t = report["student"], report["teacher_figures"]
        lines += ["", "| | teacher | student | ratio |", "|---|---|---|---|",
                  f"| file MB | {t['file_mb']:.2f} | {s['file_mb']:.3f} | {t['file_mb'] / s['file_mb']:.1f}x |",
                  f"| parameters | {t['parameters']:,} | {s['parameters']:,} | "
                  f"{t['parameters'] / s['parameters']:.1f}x |",
                  f"| GFLOPs | {t['gflops']:.3f} | {s['gflops']:.4f} | {t['gflops'] / s['gflops']:.1f}x |"]
        for b in (1, 32):
            lines.append(f"| CPU latency batch {b} (ms) | {s[f'teacher_latency_b{b}_ms']:.2f} | "
                         f"{s[f'student_latency_b{b}_ms']:.2f} | {s[f'latency_ratio_b{b}']:.2f}x faster |")
        lines += ["", f"mean cosine to teacher (held-out): {s['mean_cosine']:.4f}",
                  f"top-1 retrieval agreement (held-out halves): {s['top1_agreement']:.4f}",
                  f"training: {report['training']['steps']} steps in {report['training']['seconds']:.0f} s"]
    lines.append(f"total: {report['total_seconds']:.0f} s")
    return "\n".join(lines) + "\n"
