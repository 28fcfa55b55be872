"""Static students: a token-embedding table, mean-pooled over a text's tokens and projected to the teacher's width.

The zero-layer end of the shape space (`Shape.layers == 0`), built as model2vec builds its static models: every kept
token of the reduced vocabulary is run through the teacher alone ([CLS] token [SEP], the teacher's pooling), and
the table is those vectors on their top `width` principal directions; the projection maps them back (the PCA basis,
plus the mean). Unlike model2vec, the table and projection are then distilled on the corpus like any student (the
same cosine loss on the teacher's sentence embeddings), so each token's vector and norm (its weight in the mean)
are fitted to whole texts. Stored int8 (one scale per row) or in the saved dtype; the file's bytes are what
objectives/model_size.py counts. Inference needs no torch: a table lookup, a mean and one small matrix product.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from spaces.architecture.int8 import quantise_rows
from spaces.architecture.shapes import Shape
from spaces.architecture.vocabulary import ReducedVocabulary

CONFIG = "config.json"
WEIGHTS = "model.safetensors"


class StaticStudent(torch.nn.Module):
    """Token table -> masked mean -> linear projection (sentence embeddings in the teacher's space)."""

    def __init__(self, vocab: int, width: int, embedding_dim: int):
        super().__init__()
        self.embeddings = torch.nn.Embedding(vocab, width)   # named so distill() exempts it from weight decay
        self.embedding_dim = embedding_dim
        self.pooling = "mean"
        self.projection = torch.nn.Linear(width, embedding_dim) if width != embedding_dim else None
        self.bias = torch.nn.Parameter(torch.zeros(embedding_dim)) if self.projection is None else None

    def forward(self, input_ids, attention_mask):
        mask = attention_mask.unsqueeze(-1).to(self.embeddings.weight.dtype)
        pooled = (self.embeddings(input_ids) * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.projection(pooled) if self.projection is not None else pooled + self.bias


@dataclass(frozen=True)
class StaticTraining:
    """How a static student is distilled. Units: steps (optimizer updates), snippets per step, tokens."""

    steps: int = 300
    batch_size: int = 64
    learning_rate: float = 2e-2       # peak; a table and one linear map take 10x a transformer's rate
    anchor: float = 3e-2              # weight of the pull of each row toward its start (mean squared distance per
                                      # row): the rows start from the teacher's states in context, which a few
                                      # thousand snippets would otherwise pull rare tokens away from
    weight_decay: float = 0.01        # on the projection only
    warmup_fraction: float = 0.05     # of steps, linear from 0, then cosine decay to 0
    clip_norm: float = 1.0
    max_length: int = 128             # student tokens per snippet
    length_window: int = 32           # batches drawn together and sorted by length (less padding)
    threads: int = 0                  # torch CPU threads; 0 = leave torch's setting
    seed: int = 0


def distill_static(student: StaticStudent, tokenizer, texts: Sequence[str], targets: np.ndarray,
                   config: StaticTraining) -> float:
    """Train `student` in place: loss 1 - cosine(student, teacher embedding) per snippet, plus `anchor` x the
    mean squared distance of the table's rows to where they started. Returns the seconds the steps took.
    Deterministic for `config.seed` (batch order; no other random draw)."""
    import time

    from objectives.distillation import _schedule, length_batches

    if len(texts) != len(targets) or not len(texts):
        raise ValueError(f"distill_static: {len(texts)} texts for {len(targets)} targets")
    if config.threads:
        torch.set_num_threads(config.threads)
    encoded = tokenizer(list(texts), truncation=True, max_length=config.max_length)["input_ids"]
    lengths = np.fromiter((len(e) for e in encoded), dtype=np.int64)
    ids = np.zeros((len(encoded), int(lengths.max())), dtype=np.int64)
    for row, e in enumerate(encoded):
        ids[row, : len(e)] = e
    target = torch.nn.functional.normalize(torch.as_tensor(targets, dtype=torch.float32), dim=1)
    batches = length_batches(lengths, config.batch_size, config.steps, config.length_window,
                             np.random.default_rng(config.seed))
    table = student.embeddings.weight
    start = table.detach().clone()
    decay = [student.projection.weight] if student.projection is not None else []
    rest = [p for p in student.parameters() if all(p is not q for q in decay)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": rest, "weight_decay": 0.0}], lr=config.learning_rate)
    warmup = max(1, int(config.warmup_fraction * config.steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _schedule(s, config.steps, warmup))
    student.train()
    began = time.perf_counter()
    for batch in batches:
        width = int(lengths[batch].max())
        input_ids = torch.as_tensor(ids[batch, :width])
        mask = (torch.arange(width)[None, :] < torch.as_tensor(lengths[batch])[:, None]).long()
        loss = (1.0 - torch.nn.functional.cosine_similarity(student(input_ids, mask), target[batch], dim=1)).mean()
        if config.anchor:
            loss = loss + config.anchor * (table - start).square().sum(1).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), config.clip_norm)
        optimizer.step()
        scheduler.step()
    student.eval()
    return time.perf_counter() - began


def static_flops(shape: Shape, seq_length: int, embedding_dim: int) -> int:
    """FLOPs of one text of `seq_length` tokens: the mean (s x width adds) and the projection (2 width d)."""
    return seq_length * shape.hidden + (2 * shape.hidden * embedding_dim if shape.hidden != embedding_dim else 0)


def token_states(teacher, vocabulary: ReducedVocabulary, batch_size: int = 512) -> np.ndarray:
    """(len(vocabulary), teacher width) float64: the teacher's pooled output for each kept token on its own."""
    from spaces.architecture.teacher import pool

    tok = teacher.tokenizer
    cls, sep = tok.convert_tokens_to_ids("[CLS]"), tok.convert_tokens_to_ids("[SEP]")
    ids = torch.as_tensor(vocabulary.teacher_ids, dtype=torch.long)
    out = np.empty((len(ids), teacher.embedding_dim), dtype=np.float64)
    with torch.inference_mode():
        for start in range(0, len(ids), batch_size):
            chunk = ids[start:start + batch_size]
            batch = torch.stack([torch.full_like(chunk, cls), chunk, torch.full_like(chunk, sep)], dim=1)
            mask = torch.ones_like(batch)
            states = teacher.model(input_ids=batch, attention_mask=mask).last_hidden_state
            out[start:start + len(chunk)] = pool(states, mask, teacher.pooling).double().numpy()
    return out


def build_static(shape: Shape, teacher, vocabulary: ReducedVocabulary, contextual=None) -> StaticStudent:
    """A static student initialised as model2vec does, PCA of per-token teacher outputs (no training). With
    `contextual` (teacher.TokenStates: each token's state averaged over its occurrences in the training corpus),
    a row starts from that, and only tokens the corpus never shows the teacher are run alone."""
    if contextual is None:
        states = token_states(teacher, vocabulary)
    else:
        means, found = contextual.lookup(vocabulary.teacher_ids)
        states = means.astype(np.float64)
        if not found.all():
            missing = ReducedVocabulary(tuple(t for t, f in zip(vocabulary.tokens, found) if not f),
                                        vocabulary.teacher_ids[~found])
            states[~found] = token_states(teacher, missing)
    mean = states.mean(0)
    student = StaticStudent(shape.vocab, shape.hidden, teacher.embedding_dim)
    with torch.no_grad():
        if student.projection is None:
            student.embeddings.weight.copy_(torch.as_tensor(states - mean, dtype=torch.float32))
            student.bias.copy_(torch.as_tensor(mean, dtype=torch.float32))
            return student
        # Right singular vectors: the table's `width` main directions (teacher width x width, orthonormal).
        basis = np.linalg.svd(states - mean, full_matrices=len(states) < shape.hidden)[2][: shape.hidden].T
        student.embeddings.weight.copy_(torch.as_tensor((states - mean) @ basis, dtype=torch.float32))
        student.projection.weight.copy_(torch.as_tensor(basis, dtype=torch.float32))
        student.projection.bias.copy_(torch.as_tensor(mean, dtype=torch.float32))
    return student


def save_static(student: StaticStudent, tokenizer, directory: Path, shape: Shape, dtype: str = "float16") -> None:
    """Write weights (model.safetensors), config.json and the tokenizer; sizes match objectives/model_size.py.
    bfloat16 is written as float16 (same bytes; numpy has no bfloat16)."""
    from safetensors.numpy import save_file

    from objectives.model_size import static_tensors

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    np_dtype = {"float32": np.float32, "float16": np.float16, "bfloat16": np.float16}.get(dtype)
    if np_dtype is None:
        raise ValueError(f"static students are saved as float32 or float16, not {dtype}")
    table = student.embeddings.weight.detach().float().numpy()
    tensors: dict[str, np.ndarray] = {}
    if shape.int8:
        q, scale = quantise_rows(table)
        tensors["embeddings"], tensors["scales"] = q, scale.astype(np_dtype)
    else:
        tensors["embeddings"] = table.astype(np_dtype)
    if student.projection is not None:
        tensors["projection.weight"] = student.projection.weight.detach().numpy().astype(np_dtype)
        tensors["projection.bias"] = student.projection.bias.detach().numpy().astype(np_dtype)
    else:
        tensors["projection.bias"] = student.bias.detach().numpy().astype(np_dtype)
    expected = [name for name, _, _ in static_tensors(shape, student.embedding_dim, dtype)]
    assert sorted(expected) == sorted(tensors), (expected, list(tensors))
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(directory / WEIGHTS),
              metadata={"format": "pt"})
    tokenizer.save_pretrained(directory)
    (directory / CONFIG).write_text(json.dumps({
        "evoforge_static": True, "vocab_size": shape.vocab, "width": shape.hidden, "int8": shape.int8,
        "embedding_dim": student.embedding_dim, "dtype": dtype, "pooling": "mean"}, indent=2))


def is_static(directory: Path) -> bool:
    config = Path(directory) / CONFIG
    return config.is_file() and bool(json.loads(config.read_text()).get("evoforge_static"))


class StaticEncoder:
    """A saved static student, loaded for inference with numpy (float32 table, dequantised once)."""

    def __init__(self, directory: Path):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        directory = Path(directory)
        self.config = json.loads((directory / CONFIG).read_text())
        weights = load_file(str(directory / WEIGHTS))
        table = weights["embeddings"].astype(np.float32)
        if "scales" in weights:
            table *= weights["scales"].astype(np.float32)[:, None]
        self.table = table
        self.weight = weights["projection.weight"].astype(np.float32).T if "projection.weight" in weights else None
        self.bias = weights["projection.bias"].astype(np.float32)
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.shape = Shape(0, int(self.config["width"]), 1, 0, int(self.config["vocab_size"]), 0,
                           bool(self.config["int8"]))

    def encode(self, texts: Sequence[str], max_length: int = 512) -> np.ndarray:
        """(len(texts), embedding_dim) float32: mean of each text's token rows (first `max_length` tokens,
        [CLS]/[SEP] included, as in training), projected."""
        pooled = np.empty((len(texts), self.table.shape[1]), dtype=np.float32)
        for row, encoding in enumerate(self.tokenizer.encode_batch(list(texts))):
            pooled[row] = self.table[encoding.ids[:max_length]].mean(0)
        return pooled @ self.weight + self.bias if self.weight is not None else pooled + self.bias
