"""How faithful a student is to its teacher, and how fast each runs on the CPU.

mean cosine: the average cosine similarity between the student's and the teacher's embedding of the same held-out
text (1 = same direction). top-1 agreement: held-out snippets are cut in two halves, the first halves are queries
and the second halves documents; for each query, do teacher and student retrieve the same nearest document?
Latency: median seconds of the model's forward pass on already-tokenized inputs (tokenization excluded, the same
for both), in inference mode, after warm-up.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


def normalise_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def mean_cosine(student: np.ndarray, teacher: np.ndarray) -> float:
    """Mean row-wise cosine similarity of two (n, d) embedding arrays."""
    return float(np.mean(np.sum(normalise_rows(student) * normalise_rows(teacher), axis=1)))


def retrieval_pairs(texts: Sequence[str]) -> tuple[list[str], list[str]]:
    """(queries, documents): each text cut in two at a line boundary near its middle (texts of one line are cut at
    the middle character)."""
    queries, documents = [], []
    for text in texts:
        lines = text.splitlines()
        if len(lines) >= 2:
            cut = len(lines) // 2
            q, d = "\n".join(lines[:cut]), "\n".join(lines[cut:])
        else:
            cut = len(text) // 2
            q, d = text[:cut], text[cut:]
        if q.strip() and d.strip():
            queries.append(q)
            documents.append(d)
    return queries, documents


def top1_agreement(teacher_q: np.ndarray, teacher_d: np.ndarray, student_q: np.ndarray,
                   student_d: np.ndarray) -> float:
    """Fraction of queries whose nearest document (cosine) is the same for teacher and student."""
    t = np.argmax(normalise_rows(teacher_q) @ normalise_rows(teacher_d).T, axis=1)
    s = np.argmax(normalise_rows(student_q) @ normalise_rows(student_d).T, axis=1)
    return float(np.mean(t == s))


@dataclass(frozen=True)
class Fidelity:
    mean_cosine: float
    top1_agreement: float


def fidelity(embed_student: Callable[[Sequence[str]], np.ndarray],
             embed_teacher: Callable[[Sequence[str]], np.ndarray], texts: Sequence[str],
             teacher_embeddings: np.ndarray | None = None) -> Fidelity:
    """Mean cosine on `texts` and top-1 retrieval agreement on their halves."""
    teacher = teacher_embeddings if teacher_embeddings is not None else embed_teacher(texts)
    cosine = mean_cosine(embed_student(texts), teacher)
    queries, documents = retrieval_pairs(texts)
    agreement = top1_agreement(embed_teacher(queries), embed_teacher(documents), embed_student(queries),
                               embed_student(documents))
    return Fidelity(mean_cosine=cosine, top1_agreement=agreement)


def forward_latency(model: Any, tokenizer: Any, texts: Sequence[str], batch_size: int, max_length: int,
                    repeats: int = 20, warmup: int = 3) -> float:
    """Median seconds of one forward pass of `model(input_ids, attention_mask)` on a batch of `batch_size` texts.

    Each repeat uses the next batch of texts (cycling), so the median covers a spread of real lengths.
    """
    import torch

    batches = []
    for r in range(repeats + warmup):
        start = (r * batch_size) % max(1, len(texts) - batch_size + 1)
        enc = tokenizer(list(texts[start:start + batch_size]), padding=True, truncation=True,
                        max_length=max_length, return_tensors="pt")
        batches.append((enc["input_ids"], enc["attention_mask"]))
    times = []
    with torch.inference_mode():
        for r, (ids, mask) in enumerate(batches):
            begin = time.perf_counter()
            model(input_ids=ids, attention_mask=mask)
            if r >= warmup:
                times.append(time.perf_counter() - begin)
    return statistics.median(times)


def encode_latency(encode: Callable[[Sequence[str]], Any], texts: Sequence[str], repeats: int = 100,
                   warmup: int = 5) -> float:
    """Median seconds for `encode([text])` over the first `repeats` texts: batch 1 from text to vector,
    tokenizing included (what a user of a static table or an encoder waits for; `forward_latency` leaves the
    tokenizer out, which hides most of a static table's cost)."""
    for text in texts[:warmup]:
        encode([text])
    times = []
    for text in texts[:repeats]:
        began = time.perf_counter()
        encode([text])
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def domain_fidelity(encode_student: Callable[[Sequence[str]], np.ndarray],
                    encode_teacher: Callable[[Sequence[str]], np.ndarray], by_domain: dict[str, Sequence[str]],
                    teacher_embeddings: np.ndarray) -> dict[str, Any]:
    """{domain: {mean_cosine, top1_agreement}} plus both measures averaged over the domains.

    `teacher_embeddings` are the teacher's vectors of every domain's texts, concatenated in `by_domain`'s order.
    """
    out: dict[str, Any] = {}
    start = 0
    for domain, texts in by_domain.items():
        scores = fidelity(encode_student, encode_teacher, texts, teacher_embeddings[start:start + len(texts)])
        start += len(texts)
        out[domain] = {"mean_cosine": scores.mean_cosine, "top1_agreement": scores.top1_agreement}
    for key in ("mean_cosine", "top1_agreement"):
        out[key] = float(np.mean([out[d][key] for d in by_domain]))
    return out
