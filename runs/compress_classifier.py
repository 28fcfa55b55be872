"""`evoforge compress` for a classifier teacher: a student of at most N MB that predicts the teacher's labels.

Taken when the teacher's config.json names a `...ForSequenceClassification` head (runs/cli.py). Steps:
  1. the labelled file (`--data`, spaces/architecture/labelled.py) gives training and held-out rows; its labels must
     be the teacher's (`id2label`). A tenth of the training rows (by a stable hash of their group, else of the
     text) is kept aside as the validation set that picks among students, so the held-out rows only report;
  2. the teacher's logits and mean-pooled hidden states of the training rows (one pass, cached on disk);
  3. per width in `static_widths`, the static student with the most of the corpus's tokens whose files (table,
     projection and head) fit the limit (runs.compress.static_shapes), started from the teacher's token states and
     distilled on soft labels plus hidden states (spaces/architecture/classifier_student.py); and, with
     `transformer`, the one-layer transformer body as wide as fits (the embedding path's hand-picked shape);
  4. each student is saved, loaded back from disk and measured: held-out accuracy against the labels, agreement
     with the teacher's predictions, batch-1 latency from text to label (one thread, the teacher timed the same way
     in the same run); `--prefer` picks among them by validation accuracy against latency (front.py's rule, with
     accuracy in place of cosine).
Output goes to a hidden sibling directory renamed into place at the end, as for embedding teachers.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from search.protocols import UserError

MB = 10**6


@dataclass(frozen=True)
class ClassifierSettings:
    """The soft-label distillation's own knobs; sizes, widths, lengths and timing come from CompressSettings."""

    steps: int = 600
    batch_size: int = 64
    temperature: float = 2.0
    kl_weight: float = 1.0
    hidden_weight: float = 1.0
    label_weight: float = 0.0
    transformer: bool = True       # also a one-layer transformer body, as wide as the limit allows
    transformer_steps: int = 600
    anchor: float = 1.0            # pull of table rows toward the teacher's token states; picked on the
                                   # validation rows (by file) of bench/compress_classifier.py: 0 / 0.03 / 0.3 / 1
                                   # gave 0.884 / 0.897 / 0.900 / 0.906 at W128 (bench/README.md)
    validation_percent: int = 10


def labels_missing(teacher: Path, architecture: str, labels: tuple[str, ...]) -> UserError:
    """The one-line error for a classifier teacher given no labelled file."""
    shown = ", ".join(labels[:4]) + (", ..." if len(labels) > 4 else "")
    return UserError(f"--data: {str(teacher)!r} is a classifier ({architecture}, labels {shown}); pass --data "
                     "FILE.csv with columns text and label (--text-column, --label-column) to distil it and measure "
                     "its accuracy")


def teacher_labels(path: Path) -> tuple[str, ...]:
    """The labels of a classifier folder's config.json, id order (no torch needed)."""
    config = json.loads((Path(path) / "config.json").read_text())
    id2label = config.get("id2label") or {}
    return tuple(str(id2label[k]) for k in sorted(id2label, key=int))


def label_ids(labels: tuple[str, ...], values: tuple[str, ...], source: str) -> np.ndarray:
    """Each row's label as the teacher's id: by name (id2label), or a number that is a valid id."""
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({v for v in values if v not in index and not (v.isdigit() and int(v) < len(labels))})
    if unknown:
        shown = ", ".join(unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        raise UserError(f"--data: labels {shown} of {source!r} are not the teacher's (id2label: "
                        f"{', '.join(labels)}); use those names or their ids")
    return np.array([index[v] if v in index else int(v) for v in values], dtype=np.int64)


def compress_classifier(teacher: str, to: str, data: str | None, out: str | None, settings=None,
                        classifier: ClassifierSettings = ClassifierSettings(), log=print, prefer: str = "fidelity",
                        text_column: str = "text", label_column: str = "label") -> Path:
    """Compress a classifier teacher; returns the output folder (student, report.json, report.md)."""
    from runs.compress import CompressSettings, parse_target
    from spaces.architecture.classifier_teacher import classifier_architecture
    from spaces.architecture.front import check_preference
    from spaces.architecture.labelled import load_labelled
    from spaces.architecture.teacher import require_weights, resolve_teacher

    settings = settings or CompressSettings()
    limit_mb = parse_target(to)
    check_preference(prefer)
    path = resolve_teacher(teacher)
    architecture = classifier_architecture(path)
    if architecture is None:
        raise UserError(f"teacher: {str(path)!r} has no sequence-classification head in its config.json")
    labels = teacher_labels(path)
    if not data:
        raise labels_missing(path, architecture, labels)
    require_weights(path)
    rows = load_labelled(data, text_column, label_column)
    train_ids = label_ids(labels, rows.train_labels, rows.source)
    held_ids = label_ids(labels, rows.held_out_labels, rows.source)
    target = _output_dir(out, path, limit_mb)
    began = time.perf_counter()
    validation = validation_rows(rows, classifier.validation_percent)
    train_texts = tuple(t for t, v in zip(rows.train, validation) if not v)
    val_texts = tuple(t for t, v in zip(rows.train, validation) if v)
    log(f"data: {len(train_texts)} training, {len(val_texts)} validation, {len(rows.held_out)} held-out rows, "
        f"{len(labels)} labels, from {rows.source}")

    import torch

    from objectives.distillation import default_cache_dir
    from spaces.architecture.classifier_teacher import cached_outputs, load_classifier_teacher

    if settings.threads:  # 0: torch's default (all cores, or OMP_NUM_THREADS when set)
        torch.set_num_threads(settings.threads)
    loaded = load_classifier_teacher(path)
    timings: dict[str, float] = {}
    mark = time.perf_counter()
    cache = default_cache_dir()
    logits, hidden, tokens = cached_outputs(loaded, train_texts, settings.max_length, cache)
    val_logits = cached_outputs(loaded, val_texts, settings.max_length, cache)[0]
    held_logits = cached_outputs(loaded, rows.held_out, settings.max_length, cache)[0]
    timings["teacher_targets"] = time.perf_counter() - mark
    teacher_pred = held_logits.argmax(1)
    plan, shapes = _shapes(loaded, train_texts, limit_mb, len(labels), settings)
    staging = target.parent / f".{target.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        mark = time.perf_counter()
        skipped_transformer = False
        if classifier.transformer:
            transformer = _transformer_shape(plan, path, limit_mb, len(labels), loaded.embedding_dim, settings)
            shapes = shapes + ([transformer] if transformer is not None else [])
        targets = (train_texts, logits, hidden, tokens, train_ids[~validation])
        trained = []
        for k, shape in enumerate(shapes):   # the static students first, the transformer (when planned) last
            left = settings.time_budget - (time.perf_counter() - began) if settings.time_budget > 0 else None
            student = _train(shape, plan, loaded, targets, settings, classifier,
                             staging / "students" / f"student-{k}", log, budget_seconds=left)
            if student is not None:
                trained.append(student)
            else:
                skipped_transformer = True
        timings["student_training"] = time.perf_counter() - mark
        mark = time.perf_counter()
        report_rows = [(folder, _measure(folder, shape, figures, rows.held_out, held_ids, teacher_pred, val_texts,
                                         train_ids[validation], settings)) for folder, shape, figures in trained]
        teacher_row = _teacher_row(loaded, rows.held_out, held_ids, teacher_pred, val_logits,
                                   train_ids[validation], settings)
        timings["measure"] = time.perf_counter() - mark
        for _, row in report_rows:
            if row["file_mb"] > limit_mb:
                raise RuntimeError(f"student files are {row['file_mb']:.4f} MB, over {limit_mb} MB")
        chosen = _pick([r for _, r in report_rows], prefer)
        folder = next(f for f, r in report_rows if r is chosen)
        for item in folder.iterdir():
            item.rename(staging / item.name)
        shutil.rmtree(staging / "students", ignore_errors=True)
        report = {"teacher": str(path), "architecture": architecture, "labels": list(labels),
                  "target_mb": limit_mb, "mb": "10^6 bytes", "prefer": prefer,
                  "data": {"source": rows.source, "train": len(train_texts), "validation": len(val_texts),
                           "held_out": len(rows.held_out)},
                  "settings": asdict(settings), "classifier": asdict(classifier),
                  "teacher_figures": teacher_row, "student": chosen, "students": [r for _, r in report_rows],
                  "transformer_skipped_for_time": skipped_transformer,
                  "timings": timings, "total_seconds": time.perf_counter() - began}
        (staging / "report.json").write_text(json.dumps(report, indent=2, default=str))
        (staging / "report.md").write_text(report_markdown(report))
        if target.exists():
            target.rmdir()  # empty (checked above)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f"chosen (--prefer {prefer}): {chosen['name']}  held-out accuracy {chosen['accuracy']:.4f} (teacher "
        f"{teacher_row['accuracy']:.4f})  {teacher_row['latency_ms'] / chosen['latency_ms']:.1f}x faster")
    return target


def _shapes(loaded, texts, limit_mb: float, labels: int, settings) -> tuple[Any, list]:
    """(the vocabulary plan of `texts`, the static shapes whose table and projection fit the limit less the
    head's file)."""
    from runs.compress import static_shapes
    from spaces.architecture.classifier_student import head_bytes_bound
    from spaces.architecture.vocabulary import plan_vocabulary

    plan = plan_vocabulary(loaded.tokenizer, texts)
    head_mb = head_bytes_bound(labels, loaded.embedding_dim, settings.dtype) / MB
    shapes = static_shapes(limit_mb - head_mb, plan, loaded.embedding_dim, settings)
    if not shapes:
        raise UserError(f"--to: {limit_mb:g} MB holds no static classifier with this teacher and data (the "
                        f"smallest table, {plan.floor} tokens at width {min(settings.static_widths or (0,))}, "
                        "plus projection and head, is larger); use a larger --to")
    return plan, shapes


def validation_rows(rows, percent: int) -> np.ndarray:
    """Which training rows validate (bool per row): `percent` of the groups (of the texts without groups) by a
    stable hash, or the first tenth when the hash puts all or none there."""
    from spaces.architecture.labelled import held_out_key

    keys = rows.train_groups if any(rows.train_groups) else rows.train
    validation = np.array([held_out_key(k or t, percent) for k, t in zip(keys, rows.train)])
    if validation.all() or not validation.any():
        validation = np.arange(len(rows.train)) < max(1, len(rows.train) // 10)
    return validation


def _train(shape, plan, loaded, targets, settings, classifier: ClassifierSettings, folder: Path, log,
           budget_seconds: float | None = None):
    """(folder, shape, training figures) of one student, distilled and saved in `folder`; None when the transformer
    student's predicted training time does not fit `budget_seconds` (--time-budget less the time spent so far)."""
    texts, logits, hidden, tokens, labels = targets
    if shape.static:
        figures = _train_static(shape, plan, loaded, texts, logits, hidden, tokens, labels, settings, classifier,
                                folder)
    else:
        figures = _train_transformer(shape, plan, loaded, texts, logits, hidden, labels, settings, classifier, folder,
                                     budget_seconds)
        if figures.get("skipped"):
            log(f"transformer student {shape.describe()} skipped: {classifier.transformer_steps} steps predicted at "
                f"{figures['predicted_seconds']:.0f} s, {max(budget_seconds or 0.0, 0.0):.0f} s of the "
                f"{settings.time_budget:.0f} s budget left (--time-budget 0 always trains it)")
            return None
    log(f"{'static' if shape.static else 'transformer'} student {shape.describe()}: {figures['seconds']:.0f} s, "
        f"loss {figures['final_loss']:.4f}")
    return folder, shape, figures


def _transformer_shape(plan, path: Path, limit_mb: float, labels: int, embedding_dim: int, settings):
    """The one-layer transformer as wide as fits the limit less the head, with every token the rows use (the
    embedding path's hand-picked baseline, runs.compress.hand_picked_shape), or None when none fits."""
    from runs.compress import hand_picked_shape
    from spaces.architecture.classifier_student import head_bytes_bound

    head_mb = head_bytes_bound(labels, embedding_dim, settings.dtype) / MB
    try:
        return hand_picked_shape(str(path), limit_mb - head_mb, plan.floor + plan.used, settings)
    except UserError:
        return None


def _train_transformer(shape, plan, loaded, texts, logits, hidden, labels, settings,
                       classifier: ClassifierSettings, folder: Path, budget_seconds: float | None = None) -> dict:
    """A transformer body started as the embedding path starts it (rows from the teacher's per-token outputs,
    init "token_states"), plus a head, distilled like the static ones at the transformer learning rate."""
    from spaces.architecture.classifier_student import (
        ClassifierStudent,
        ClassifierTraining,
        distil_classifier,
        save_head,
    )
    from spaces.architecture.static import token_states
    from spaces.architecture.student import build_student, initialise_from_teacher, save_student
    from spaces.architecture.vocabulary import reduce_vocabulary, student_tokenizer

    vocabulary = reduce_vocabulary(loaded.tokenizer, plan, shape.vocab)
    length = min(settings.seq_length, shape.positions)
    tokenizer = student_tokenizer(loaded.tokenizer, vocabulary, length)
    body = build_student(shape, loaded.encoder.config, loaded.embedding_dim, settings.seed, "mean")
    initialise_from_teacher(body, loaded.encoder.model, vocabulary, hidden.mean(0),
                            token_states=token_states(loaded.encoder, vocabulary))
    student = ClassifierStudent(body, loaded.embedding_dim, len(loaded.labels))
    config = ClassifierTraining(steps=classifier.transformer_steps, batch_size=classifier.batch_size,
                                learning_rate=settings.learning_rate, temperature=classifier.temperature,
                                kl_weight=classifier.kl_weight, hidden_weight=classifier.hidden_weight,
                                label_weight=classifier.label_weight, max_length=length, seed=settings.seed)
    figures = distil_classifier(student, tokenizer, texts, logits, hidden, config, labels,
                                budget_seconds=budget_seconds)
    if figures.get("skipped"):
        return figures
    save_student(body, tokenizer, folder, settings.dtype, length)
    save_head(student, folder, loaded.labels, settings.dtype, {"temperature": classifier.temperature,
                                                              "max_length": length})
    return figures


def _train_static(shape, plan, loaded, texts, logits, hidden, tokens, labels, settings, classifier: ClassifierSettings,
               folder: Path) -> dict:
    from spaces.architecture.classifier_student import (
        ClassifierStudent,
        ClassifierTraining,
        distil_classifier,
        save_head,
    )
    from spaces.architecture.static import build_static, save_static
    from spaces.architecture.vocabulary import reduce_vocabulary, student_tokenizer

    vocabulary = reduce_vocabulary(loaded.tokenizer, plan, shape.vocab)
    tokenizer = student_tokenizer(loaded.tokenizer, vocabulary, settings.seq_length)
    body = build_static(shape, loaded.encoder, vocabulary, tokens)
    student = ClassifierStudent(body, loaded.embedding_dim, len(loaded.labels))
    config = ClassifierTraining(steps=classifier.steps, batch_size=classifier.batch_size,
                                learning_rate=settings.learning_rate * 10, temperature=classifier.temperature,
                                kl_weight=classifier.kl_weight, hidden_weight=classifier.hidden_weight,
                                label_weight=classifier.label_weight, anchor=classifier.anchor,
                                max_length=settings.seq_length,
                                seed=settings.seed)
    figures = distil_classifier(student, tokenizer, texts, logits, hidden, config, labels)
    save_static(body, tokenizer, folder, shape, settings.dtype)
    save_head(student, folder, loaded.labels, settings.dtype, {"temperature": classifier.temperature,
                                                              "max_length": settings.seq_length})
    return figures


@contextmanager
def _timed(settings):
    """Torch at `latency_threads` while timing (teacher and students alike), then as before."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(settings.latency_threads or _all_threads())
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _measure(folder: Path, shape, figures: dict, texts, truth: np.ndarray, teacher_pred: np.ndarray, val_texts,
             val_truth: np.ndarray, settings) -> dict[str, Any]:
    """A saved student's figures, loaded back from disk: accuracy, agreement with the teacher, size, latency."""
    from objectives.gflops import forward_flops
    from spaces.architecture.classifier_student import StaticClassifier, TransformerClassifier
    from spaces.architecture.fidelity import encode_latency
    from spaces.architecture.static import is_static, static_flops
    from spaces.architecture.student import weight_files

    static = is_static(folder)
    student = (StaticClassifier if static else TransformerClassifier)(folder, settings.seq_length)
    predicted = student.predict(texts)
    if static:
        gflops = static_flops(shape, settings.seq_length, student.weight.shape[0]) / 1e9
        parameters = int(student.encoder.table.size + student.encoder.bias.size + student.weight.size
                         + student.bias.size + (0 if student.encoder.weight is None else student.encoder.weight.size))
    else:
        gflops = forward_flops(shape, student.max_length, student.student.embedding_dim) / 1e9
        parameters = sum(p.numel() for m in (student.student, student.head) for p in m.parameters())
    files = [*weight_files(folder), folder / "classifier.safetensors"]
    with _timed(settings):
        latency = encode_latency(student.predict, texts, settings.latency_texts)
    return {"name": shape.describe(), "kind": "static" if static else "transformer", "file_mb": sum(p.stat().st_size for p in files) / MB,
            "accuracy": float(np.mean(predicted == truth)), "agreement": float(np.mean(predicted == teacher_pred)),
            "validation_accuracy": float(np.mean(student.predict(val_texts) == val_truth)),
            "latency_ms": 1e3 * latency, "gflops": gflops, "parameters": parameters, "training": figures}


def _teacher_row(loaded, texts, truth, teacher_pred, val_logits, val_truth, settings) -> dict[str, Any]:
    from spaces.architecture.fidelity import encode_latency

    files = list(loaded.path.glob("*.safetensors")) or list(loaded.path.glob("*.bin"))
    with _timed(settings):
        latency = encode_latency(lambda t: loaded.predict(t, settings.max_length), texts, settings.latency_texts)
    return {"path": str(loaded.path), "file_mb": sum(p.stat().st_size for p in files) / MB,
            "parameters": sum(p.numel() for p in loaded.model.parameters()),
            "accuracy": float(np.mean(teacher_pred == truth)),
            "validation_accuracy": float(np.mean(val_logits.argmax(1) == val_truth)), "latency_ms": 1e3 * latency}


def _pick(rows: list[dict[str, Any]], prefer: str) -> dict[str, Any]:
    """front.pick on (validation accuracy, latency): the held-out rows stay out of the choice."""
    from spaces.architecture.front import pick

    points = [{"mean_cosine": r["validation_accuracy"], "latency_ms": r["latency_ms"], "row": r} for r in rows]
    return pick(points, prefer)["row"]


def _output_dir(out: str | None, teacher: Path, limit_mb: float) -> Path:
    path = Path(out) if out else Path(f"{teacher.name}-{limit_mb:g}MB")
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UserError(f"--out: {str(path)!r} already exists and is not empty; remove it or choose another")
    return path


def _all_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def report_markdown(report: dict[str, Any]) -> str:
    t, s = report["teacher_figures"], report["student"]
    lines = [f"# Compressed classifier (target {report['target_mb']:g} MB, MB = 10^6 bytes)", "",
             f"teacher: {report['teacher']} ({report['architecture']}, {len(report['labels'])} labels)",
             f"data: {report['data']['train']} training, {report['data']['validation']} validation (picks the "
             f"student), {report['data']['held_out']} held-out rows (accuracy below), {report['data']['source']}", "",
             "Latency: one text to its label, tokenizing included, median, "
             f"{report['settings']['latency_threads']} thread(s), same run.", "",
             "| model | MB | held-out accuracy | agreement with teacher | validation accuracy | latency ms | x teacher |",
             "|---|---|---|---|---|---|---|",
             f"| teacher | {t['file_mb']:.2f} | {t['accuracy']:.4f} | 1 | {t['validation_accuracy']:.4f} | "
             f"{t['latency_ms']:.2f} | 1.0x |"]
    for r in report["students"]:
        name = r["name"] + (" (chosen)" if r is s or r["name"] == s["name"] else "")
        lines.append(f"| {name} | {r['file_mb']:.3f} | {r['accuracy']:.4f} | {r['agreement']:.4f} | "
                     f"{r['validation_accuracy']:.4f} | {r['latency_ms']:.3f} | {t['latency_ms'] / r['latency_ms']:.1f}x |")
    lines += ["", f"accuracy gap (teacher - student): {100 * (t['accuracy'] - s['accuracy']):+.2f} points",
              "timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in report["timings"].items()),
              f"total: {report['total_seconds']:.0f} s"]
    if report.get("transformer_skipped_for_time"):
        lines.append(f"the one-layer transformer student was not trained: its steps would not fit --time-budget "
                     f"{report['settings']['time_budget']:g} s (--time-budget 0 always trains it)")
    return "\n".join(lines) + "\n"
