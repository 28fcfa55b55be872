"""The int8 gene at 3 MB: the hand rule's float16 one-layer student against int8 students of twice the parameters.

    python bench/compress_int8.py                # 1,000 distillation steps each, about 7 minutes on 2 cores

Same corpus, teacher targets (cached: a `evoforge compress all-MiniLM-L6-v2 --to 3MB` run fills the cache) and
training settings as the command's transformer stage; each student is written (int8 rows + float16 scales, or
float16), loaded back from disk and scored on the command's held-out code and prose. Writes
bench/results/compress_int8.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=RESULTS / "compress_int8.json")
    args = ap.parse_args()

    import torch

    from objectives.distillation import TrainingConfig, prepare_data, train_student
    from objectives.model_size import student_size
    from runs.compress import CompressSettings, corpus_config, domain_scores
    from spaces.architecture.corpus import CorpusConfig, load_corpus
    from spaces.architecture.shapes import Shape
    from spaces.architecture.student import embed, load_student, save_student, weight_files
    from spaces.architecture.teacher import load_teacher

    torch.set_num_threads(2)
    settings = CompressSettings()
    corpus = load_corpus(None, corpus_config(settings), settings.seed)
    teacher = load_teacher("all-MiniLM-L6-v2")
    data = prepare_data(teacher, None, CorpusConfig(), settings.max_length, settings.seed, corpus=corpus)
    variants = [("float16, the hand rule's shape", Shape(1, 240, 6, 960, 2000, 128), settings.init),
                ("int8, the teacher's width", Shape(1, 384, 12, 1536, 2000, 128, True), settings.init),
                ("int8, the teacher's width, its first layer inherited", Shape(1, 384, 12, 1536, 2000, 128, True),
                 "teacher_layers")]
    rows = []
    for label, shape, init in variants:
        config = TrainingConfig(steps=args.steps, batch_size=settings.batch_size,
                                learning_rate=settings.learning_rate, max_length=settings.seq_length,
                                threads=2, seed=settings.seed)
        student, tokenizer, result = train_student(shape, data, config, init=init)
        with tempfile.TemporaryDirectory() as tmp:
            save_student(student, tokenizer, Path(tmp), settings.dtype, settings.seq_length, int8=shape.int8)
            model, loaded_tokenizer = load_student(Path(tmp))
            scores = domain_scores(lambda t, m=model, tk=loaded_tokenizer: embed(m, tk, t, settings.seq_length), data)
            file_mb = sum(p.stat().st_size for p in weight_files(Path(tmp))) / 1e6
        row = {"label": label, "shape": shape.describe(), "init": init, "file_mb": file_mb,
               "parameters": student_size(shape, teacher.embedding_dim, settings.dtype).parameters,
               "train_seconds": result.seconds, "mean_cosine_code": scores["code"]["mean_cosine"],
               "mean_cosine_prose": scores["prose"]["mean_cosine"], "top1_code": scores["code"]["top1_agreement"],
               "top1_prose": scores["prose"]["top1_agreement"]}
        rows.append(row)
        print(json.dumps(row), flush=True)
    args.out.write_text(json.dumps({"measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                    "steps": args.steps, "batch_size": settings.batch_size,
                                    "train_snippets": len(corpus.train), "cores": 2, "rows": rows}, indent=2) + "\n")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
