"""Static and transformer students of evoforge against model2vec (the peer) at 1, 3 and 10 MB, per domain.

model2vec (`pip install model2vec[distill]`, the `bench` extra) turns the same teacher into a static table as a new
user would run it: `distill(teacher, pca_dims=D, quantize_to="int8")`, D the most dimensions whose file fits the
size. Its vectors have D dimensions, so each is mapped to the teacher's 384 by least squares (with a bias) on
`--map-snippets` training snippets, as in issue 15; cosine is then defined. Ours, at the same sizes: the static
students of the shape space (spaces/architecture/static.py: zero layers, int8 table, vocabulary cut to the corpus)
distilled on the corpus, and optionally (`--transformers`) the transformer student the CLI chose at that size.

Every model is measured the same way on the same held-out sets (code and English prose, spaces/architecture/corpus.py):
mean cosine to the teacher's embedding, top-1 retrieval agreement (fidelity.py), weight-file bytes (MB = 10^6), and
batch-1 latency from text to vector (tokenizing included: that is what a user waits for), median of
`--latency-texts` single held-out texts, one thread, after warm-up. A row of ours Pareto-dominates model2vec's at a
size when its mean cosine and top-1 (averaged over the domains) are higher and its latency is no higher.

    python bench/compress_vs_model2vec.py                     # writes bench/results/compress.json ["vs_model2vec"]

Other keys of compress.json (the GPU run of bench/compress.py) are kept.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from objectives.distillation import TrainingConfig, prepare_data, train_student  # noqa: E402
from objectives.model_size import student_size  # noqa: E402
from spaces.architecture.corpus import CorpusConfig  # noqa: E402
from spaces.architecture.fidelity import mean_cosine, retrieval_pairs, top1_agreement  # noqa: E402
from spaces.architecture.shapes import Shape  # noqa: E402
from spaces.architecture.static import StaticEncoder, save_static  # noqa: E402

MB = 10**6


def encode_latency(encode, texts, repeats: int, warmup: int = 5) -> float:
    """Median seconds to turn one text into its vector (tokenizing included)."""
    for text in texts[:warmup]:
        encode([text])
    times = []
    for text in texts[:repeats]:
        began = time.perf_counter()
        encode([text])
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def scores(encode, data, teacher_cache: dict) -> dict:
    """Mean cosine and top-1 agreement per domain, and their averages over domains."""
    out, start = {}, 0
    for domain, texts in data.corpus.domain_held_out().items():
        targets = data.held_out_targets[start:start + len(texts)]
        start += len(texts)
        queries, documents = retrieval_pairs(texts)
        if domain not in teacher_cache:
            teacher_cache[domain] = (data.teacher.embed(queries, data.max_length),
                                     data.teacher.embed(documents, data.max_length))
        tq, td = teacher_cache[domain]
        out[domain] = {"mean_cosine": mean_cosine(encode(list(texts)), targets),
                       "top1_agreement": top1_agreement(tq, td, encode(queries), encode(documents))}
    domains = list(out)
    for key in ("mean_cosine", "top1_agreement"):
        out[key] = float(np.mean([out[d][key] for d in domains]))
    return out


def model2vec_rows(teacher_path: Path, targets, data, args, teacher_cache) -> dict:
    from model2vec.distill import distill

    train = list(data.corpus.train[: args.map_snippets])
    rows = {}
    vocab = 30522 - 994  # bert-base-uncased's tokens without [unusedN], the vocabulary model2vec keeps
    for target in targets:
        dims = max(8, int(target * MB * 0.995 / vocab) // 8 * 8)
        began = time.perf_counter()
        model = distill(model_name=str(teacher_path), pca_dims=dims, quantize_to="int8")
        build = time.perf_counter() - began
        directory = Path(tempfile.mkdtemp(prefix="m2v-"))
        model.save_pretrained(directory)
        file_mb = sum(p.stat().st_size for p in directory.glob("*.safetensors")) / MB
        x = model.encode(train)
        x1 = np.hstack([x, np.ones((len(x), 1), np.float32)])
        mapping = np.linalg.lstsq(x1, data.train_targets[: len(train)], rcond=None)[0]

        def encode(texts, model=model, mapping=mapping):
            v = model.encode(texts)
            return v @ mapping[:-1] + mapping[-1]

        row = {"kind": "model2vec", "pca_dims": dims, "quantize_to": "int8", "file_mb": file_mb,
               "build_seconds": build, **scores(encode, data, teacher_cache),
               "latency_b1_ms": 1e3 * encode_latency(encode, data.corpus.held_out, args.latency_texts)}
        rows[f"{target:g}MB"] = row
        print(f"model2vec {target:g} MB: {dims} dims {file_mb:.3f} MB cos {row['mean_cosine']:.4f} "
              f"top1 {row['top1_agreement']:.4f} {row['latency_b1_ms']:.3f} ms ({build:.0f} s)", flush=True)
    return rows


def static_shapes(target: float, used_tokens: int, floor: int, embedding_dim: int, widths) -> list[Shape]:
    """For each width, the int8 static shape with the most corpus tokens (up to all it uses) under `target` MB."""
    shapes = []
    for width in widths:
        lo, hi = floor, used_tokens
        if student_size(Shape(0, width, 1, 0, lo, 0, True), embedding_dim, "float16").file_mb_bound > target:
            continue
        while lo < hi:  # the largest vocabulary that fits
            mid = (lo + hi + 1) // 2
            fits = student_size(Shape(0, width, 1, 0, mid, 0, True), embedding_dim, "float16").file_mb_bound <= target
            lo, hi = (mid, hi) if fits else (lo, mid - 1)
        shapes.append(Shape(0, width, 1, 0, lo, 0, True))
    return shapes


def ours_static_rows(targets, data, args, teacher_cache) -> dict:
    rows = {}
    used = data.plan.floor + data.plan.used
    for target in targets:
        best = []
        for shape in static_shapes(target, used, data.plan.floor, data.teacher.embedding_dim, args.widths):
            began = time.perf_counter()
            config = TrainingConfig(steps=args.static_steps, batch_size=args.batch_size, learning_rate=args.lr,
                                    max_length=128, threads=1, seed=0)
            student, tokenizer, _ = train_student(shape, data, config)
            directory = Path(tempfile.mkdtemp(prefix="static-"))
            save_static(student, tokenizer, directory, shape, "float16")
            seconds = time.perf_counter() - began
            encoder = StaticEncoder(directory)
            encode = lambda texts, encoder=encoder: encoder.encode(texts, 128)  # noqa: E731
            row = {"kind": "evoforge_static", "shape": shape.describe(),
                   "file_mb": (directory / "model.safetensors").stat().st_size / MB, "build_seconds": seconds,
                   **scores(encode, data, teacher_cache),
                   "latency_b1_ms": 1e3 * encode_latency(encode, data.corpus.held_out, args.latency_texts)}
            print(f"ours {target:g} MB {shape.describe()}: {row['file_mb']:.3f} MB cos {row['mean_cosine']:.4f} "
                  f"top1 {row['top1_agreement']:.4f} {row['latency_b1_ms']:.3f} ms ({seconds:.0f} s)", flush=True)
            best.append(row)
        rows[f"{target:g}MB"] = best
    return rows


def dominates(ours: dict, peer: dict) -> bool:
    return (ours["mean_cosine"] > peer["mean_cosine"] and ours["top1_agreement"] > peer["top1_agreement"]
            and ours["latency_b1_ms"] <= peer["latency_b1_ms"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=float, nargs="+", default=[1.0, 3.0, 10.0], help="sizes in MB")
    parser.add_argument("--train-snippets", type=int, default=16000)
    parser.add_argument("--held-out", type=int, default=500, help="held-out snippets per domain")
    parser.add_argument("--map-snippets", type=int, default=4000)
    parser.add_argument("--static-steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3, help="x static_lr_scale (10) for static students")
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--latency-texts", type=int, default=200)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "compress.json"))
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    began = time.perf_counter()
    data = prepare_data("", None, CorpusConfig(max_train=args.train_snippets, max_held_out=args.held_out), 96)
    teacher_cache: dict = {}
    teacher_encode = lambda texts: data.teacher.embed(texts, 96)  # noqa: E731
    teacher_row = {"kind": "teacher", "file_mb": sum(p.stat().st_size for p in data.teacher.path.glob("*.safetensors")) / MB,
                   "latency_b1_ms": 1e3 * encode_latency(teacher_encode, data.corpus.held_out, args.latency_texts)}
    print(f"teacher: {teacher_row['latency_b1_ms']:.2f} ms at batch 1; data ready in {time.perf_counter() - began:.0f} s",
          flush=True)
    peer = model2vec_rows(data.teacher.path, args.targets, data, args, teacher_cache)
    ours = ours_static_rows(args.targets, data, args, teacher_cache)
    verdict = {}
    for key, m2v in peer.items():
        winners = [r["shape"] for r in ours.get(key, []) if dominates(r, m2v)]
        verdict[key] = {"dominating": winners}
    result = {"settings": vars(args), "corpus": data.corpus.source, "teacher": teacher_row,
              "model2vec": peer, "evoforge_static": ours, "verdict": verdict,
              "seconds": time.perf_counter() - began,
              "machine": "2-core shared CPU, other engineers' jobs running; latency on 1 torch thread"}
    out = Path(args.out)
    existing = json.loads(out.read_text()) if out.is_file() else {}
    existing["vs_model2vec"] = merge(existing.get("vs_model2vec"), result)
    out.write_text(json.dumps(existing, indent=2))
    print_table(result)


def merge(previous: dict | None, result: dict) -> dict:
    """This run's sizes replace the same sizes of an earlier run with the same settings (other sizes kept), so
    sizes can be run one process each; a run with other settings replaces everything."""
    same = previous and {k: v for k, v in previous["settings"].items() if k not in ("targets", "out", "widths")} == {
        k: v for k, v in result["settings"].items() if k not in ("targets", "out", "widths")}
    if not same:
        return result
    merged = dict(previous)
    for key in ("model2vec", "evoforge_static", "verdict"):
        merged[key] = {**previous[key], **result[key]}
    merged["runs"] = previous.get("runs", [{"targets": previous["settings"]["targets"],
                                            "seconds": previous["seconds"], "widths": previous["settings"]["widths"]}])
    merged["runs"].append({"targets": result["settings"]["targets"], "seconds": result["seconds"],
                           "widths": result["settings"]["widths"]})
    return merged


def print_table(result: dict) -> None:
    print(f"\n{'size':>5} {'model':38s} {'MB':>7} {'cos code':>9} {'cos prose':>9} {'top1':>6} {'ms b1':>7}")
    for key, m2v in result["model2vec"].items():
        rows = [(f"model2vec {m2v['pca_dims']} dims int8", m2v)] + [
            (f"evoforge {r['shape']}", r) for r in result["evoforge_static"].get(key, [])]
        for name, r in rows:
            print(f"{key:>5} {name:38s} {r['file_mb']:7.3f} {r['code']['mean_cosine']:9.4f} "
                  f"{r['prose']['mean_cosine']:9.4f} {r['top1_agreement']:6.3f} {r['latency_b1_ms']:7.3f}")
        print(f"      dominating model2vec: {result['verdict'][key]['dominating'] or 'none'}")


if __name__ == "__main__":
    main()
