"""`evoforge compress` on a classifier teacher: MiniLM fine-tuned on a stdlib code task, compressed to 3 MB.

No fine-tuned classifier ships offline, so this builds one (issue 15, item 3):
  1. the task: which of 8 standard-library packages a snippet of code comes from (spaces/architecture/stdlib_task.py;
     split by file, 400 training / 100 held-out snippets per package, from the Python that runs this);
  2. the teacher: the packaged all-MiniLM-L6-v2 plus a classification head, fine-tuned on the training rows on the
     CPU (64 tokens, `--epochs`, one thread), saved under the cache dir ($EVOFORGE_CACHE or ~/.cache/evoforge,
     outside git) keyed by the task's and the fine-tune's parameters, so a second run reuses it;
  3. the command a user runs, `evoforge compress TEACHER --to 3MB --data task.csv`, in a child process (its wall and
     CPU seconds, the load average before and after: the machine is shared);
  4. the figures from the command's report: teacher and student accuracy on the held-out rows, the gap in points,
     batch-1 latency of both (text to label, one thread, same run) and the speedup, sizes.

    python bench/compress_classifier.py                 # writes bench/results/compress_classifier.json
    python bench/compress_classifier.py --teacher-only  # just build (or find) the fine-tuned teacher

Issue 15's target: the 3 MB student within 2 points of the teacher's accuracy.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
GAP_TARGET_POINTS = 2.0


@dataclass(frozen=True)
class FineTune:
    """How the teacher is fine-tuned (part of its cache key)."""

    max_length: int = 64            # tokens per snippet (the task's snippets are about 60-70)
    batch_size: int = 32
    epochs: float = 2.0
    learning_rate: float = 1e-4
    warmup_fraction: float = 0.1
    seed: int = 0


def teacher_folder(cache: Path, task, tune: FineTune) -> Path:
    digest = hashlib.sha256(json.dumps({"task": task.key(), "tune": asdict(tune)}).encode()).hexdigest()[:12]
    return cache / "classifier-teachers" / f"minilm-{task.key()}-{digest}"


def fine_tune(data, tune: FineTune, folder: Path, log=print) -> dict:
    """Fine-tune the packaged MiniLM with a fresh classification head on `data`'s training rows; save it in
    `folder` (written to a sibling first, renamed at the end). Returns the run's figures."""
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from spaces.architecture.teacher import resolve_teacher

    hf_logging.set_verbosity_error()
    torch.set_num_threads(1)  # the machine is shared: one core for this, one for the other jobs
    labels = data.labels
    base = resolve_teacher("all-MiniLM-L6-v2")
    torch.manual_seed(tune.seed)  # the head's init
    model = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)}, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
    # The word-embedding table is half the parameters and a few thousand snippets cannot move it usefully;
    # frozen, each step skips its gradient and its AdamW update.
    model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    encoded = tokenizer(list(data.train), truncation=True, max_length=tune.max_length, padding="max_length",
                        return_tensors="pt")
    targets = torch.as_tensor([labels.index(y) for y in data.train_labels])
    steps = int(tune.epochs * len(targets) / tune.batch_size)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=tune.learning_rate,
                                  weight_decay=0.01)
    warmup = max(1, int(tune.warmup_fraction * steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / warmup if s < warmup else max(0.0, (steps - s) / max(1, steps - warmup)))
    rng = np.random.default_rng(tune.seed)
    order = np.concatenate([rng.permutation(len(targets)) for _ in range(int(np.ceil(tune.epochs)) + 1)])
    model.train()
    began, losses = time.perf_counter(), []
    for step in range(steps):
        rows = torch.as_tensor(order[step * tune.batch_size:(step + 1) * tune.batch_size])
        mask = encoded["attention_mask"][rows]
        width = int(mask.sum(1).max())
        out = model(input_ids=encoded["input_ids"][rows, :width], attention_mask=mask[:, :width],
                    labels=targets[rows])
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(float(out.loss.detach()))
        if (step + 1) % 20 == 0 or step + 1 == steps:
            log(f"fine-tune step {step + 1}/{steps}  loss {np.mean(losses[-20:]):.4f}  "
                f"{time.perf_counter() - began:.0f} s")
    seconds = time.perf_counter() - began
    model.eval()
    staging = folder.parent / f".{folder.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    figures = {"steps": steps, "seconds": seconds, "final_loss": float(np.mean(losses[-20:])),
               "fine_tune": asdict(tune)}
    (staging / "fine_tune.json").write_text(json.dumps(figures, indent=2))
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(folder)
    return figures


def build_teacher(task, tune: FineTune, cache: Path, log=print) -> tuple[Path, dict]:
    """The fine-tuned teacher's folder, fine-tuning it only when the cache lacks it."""
    from spaces.architecture.stdlib_task import package_task

    folder = teacher_folder(cache, task, tune)
    if (folder / "fine_tune.json").is_file():
        return folder, {**json.loads((folder / "fine_tune.json").read_text()), "cached": True}
    log(f"fine-tuning the teacher into {folder}")
    return folder, {**fine_tune(package_task(task), tune, folder, log), "cached": False}


def run_command(teacher: Path, csv: Path, to: str, extra: list[str], cache: Path) -> dict:
    """`evoforge compress TEACHER --to SIZE --data CSV` in a child process with the target cache `cache` (empty
    on a first run: the teacher's pass is counted, as a new user waits for it); its report, wall and CPU seconds."""
    work = Path(tempfile.mkdtemp(prefix="compress-classifier-"))
    out = work / "student"
    shown = ["evoforge", "compress", str(teacher), "--to", to, "--data", str(csv), *extra]
    command = [str(Path(sys.executable).parent / "evoforge"), *shown[1:], "--out", str(out)]
    load_before = os.getloadavg()
    began = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT,
                   env={**os.environ, "OMP_NUM_THREADS": "1", "EVOFORGE_CACHE": str(cache)})
    wall = time.perf_counter() - began
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    report = json.loads((out / "report.json").read_text())
    files = {str(p.relative_to(out)): p.stat().st_size for p in sorted(out.rglob("*")) if p.is_file()}
    shutil.rmtree(work, ignore_errors=True)
    return {"command": " ".join(shown), "wall_seconds": wall, "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "load_average_1min": {"before": load_before[0], "after": os.getloadavg()[0]}, "cores": os.cpu_count(),
            "files": files, "report": report}


# What each loss term buys, one static width (in-process, the teacher's outputs from the cache the command filled).
VARIANTS = {"soft labels + hidden states, rows anchored (default)": {},
            "rows not anchored": {"anchor": 0.0},
            "soft labels only": {"hidden_weight": 0.0},
            "hidden states only (head: least squares)": {"kl_weight": 0.0},
            "+ hard labels": {"label_weight": 1.0},
            "temperature 1": {"temperature": 1.0},
            "temperature 4": {"temperature": 4.0},
            "half the steps": {"steps": 300},
            "3x steps": {"steps": 1800}}


def ablation(teacher: Path, csv: Path, to: str, width: int) -> list[dict]:
    """Held-out accuracy and agreement of the W`width` student per loss variant (`VARIANTS`)."""
    from dataclasses import replace

    from runs.compress import CompressSettings
    from runs.compress_classifier import ClassifierSettings, compress_classifier

    rows = []
    for name, change in VARIANTS.items():
        with tempfile.TemporaryDirectory() as folder:
            settings = replace(CompressSettings(), static_widths=(width,), threads=1)
            out = compress_classifier(str(teacher), to, str(csv), str(Path(folder) / "s"), settings,
                                      replace(ClassifierSettings(), transformer=False, **change),
                                      log=lambda _: None)
            report = json.loads((out / "report.json").read_text())
        student = report["student"]
        rows.append({"variant": name, **change, **{k: student[k] for k in (
            "accuracy", "agreement", "validation_accuracy", "file_mb")},
            "train_seconds": student["training"]["seconds"]})
        print(f"{name:42s} accuracy {student['accuracy']:.4f}  agreement {student['agreement']:.4f}  "
              f"validation {student['validation_accuracy']:.4f}")
    return rows


def summary(run: dict) -> dict:
    report = run["report"]
    teacher, student = report["teacher_figures"], report["student"]
    gap = 100 * (teacher["accuracy"] - student["accuracy"])
    return {"teacher_accuracy": teacher["accuracy"], "student_accuracy": student["accuracy"],
            "gap_points": gap, "meets_gap_target": gap <= GAP_TARGET_POINTS,
            "agreement_with_teacher": student["agreement"],
            "teacher_latency_ms": teacher["latency_ms"], "student_latency_ms": student["latency_ms"],
            "speedup": teacher["latency_ms"] / student["latency_ms"],
            "teacher_mb": teacher["file_mb"], "student_mb": student["file_mb"], "student": student["name"],
            "held_out_rows": report["data"]["held_out"], "train_rows": report["data"]["train"],
            "command_wall_seconds": run["wall_seconds"], "command_cpu_seconds": run["cpu_seconds"],
            "load_average_1min": run["load_average_1min"],
            "rows": [{k: r[k] for k in ("name", "file_mb", "accuracy", "agreement", "latency_ms",
                                        "validation_accuracy")} for r in report["students"]]}


def print_table(figures: dict, tuned: dict) -> None:
    load = figures["load_average_1min"]
    print(f"\nteacher fine-tune: {tuned['seconds']:.0f} s{' (cached)' if tuned['cached'] else ''}; command wall "
          f"{figures['command_wall_seconds']:.0f} s, CPU {figures['command_cpu_seconds']:.0f} s, load "
          f"{load['before']:.1f} -> {load['after']:.1f}; held-out rows {figures['held_out_rows']}")
    print(f"{'model':34s} {'MB':>7s} {'accuracy':>9s} {'agree':>6s} {'ms b1':>7s} {'speedup':>8s}")
    print(f"{'teacher (MiniLM fine-tuned)':34s} {figures['teacher_mb']:7.2f} {figures['teacher_accuracy']:9.4f} "
          f"{'':>6s} {figures['teacher_latency_ms']:7.3f} {'1.0x':>8s}")
    for r in figures["rows"]:
        mark = " (chosen)" if r["name"] == figures["student"] else ""
        print(f"{r['name'] + mark:34s} {r['file_mb']:7.3f} {r['accuracy']:9.4f} {r['agreement']:6.3f} "
              f"{r['latency_ms']:7.3f} {figures['teacher_latency_ms'] / r['latency_ms']:7.1f}x")
    print(f"gap {figures['gap_points']:+.2f} points (target <= {GAP_TARGET_POINTS}), speedup {figures['speedup']:.1f}x")


def main() -> None:
    from objectives.distillation import default_cache_dir
    from spaces.architecture.labelled import write_labelled
    from spaces.architecture.stdlib_task import PackageTask, package_task

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--to", default="3MB")
    parser.add_argument("--epochs", type=float, default=FineTune.epochs)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--teacher-only", action="store_true", help="build (or find) the teacher and stop")
    parser.add_argument("--ablation-width", type=int, default=128,
                        help="after the command, the loss variants at this static width (0 = none)")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more options for the command")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "compress_classifier.json"))
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)  # the machine is shared: the fine-tune and the loss variants take one core
    task, tune = PackageTask(seed=args.seed), FineTune(epochs=args.epochs, seed=args.seed)
    began = time.perf_counter()
    load_before = os.getloadavg()
    teacher, tuned = build_teacher(task, tune, default_cache_dir())
    print(f"teacher: {teacher} ({tuned['seconds']:.0f} s to fine-tune{', cached' if tuned['cached'] else ''})")
    if args.teacher_only:
        return
    with tempfile.TemporaryDirectory() as folder:
        csv = write_labelled(Path(folder) / "stdlib_packages.csv", package_task(task))
        cache = Path(folder) / "cache"
        run = run_command(teacher, csv, args.to, args.extra, cache)
        os.environ["EVOFORGE_CACHE"] = str(cache)  # the variants reuse the command's teacher outputs
        variants = ablation(teacher, csv, args.to, args.ablation_width) if args.ablation_width else []
    figures = summary(run)
    result = {"summary": figures, "task": asdict(task), "task_key": task.key(), "teacher": str(teacher),
              "teacher_fine_tune": tuned, "python": sys.version.split()[0],
              "bench_wall_seconds": time.perf_counter() - began,
              "bench_load_average_1min": {"before": load_before[0], "after": os.getloadavg()[0]},
              "bench_command": "python bench/compress_classifier.py " + " ".join(sys.argv[1:]),
              "ablation": variants, **run}
    Path(args.out).write_text(json.dumps(result, indent=2, default=str))
    print_table(figures, tuned)


if __name__ == "__main__":
    main()
