"""A classifier student: an embedding student's body plus a linear head, distilled on soft labels and hidden states.

The body is a student of the shape space as the embedding path builds it (a static table: table -> mean ->
projection, spaces/architecture/static.py; or a small transformer -> mean -> projection, student.py), projecting into
the teacher's hidden width, so its output lives where the teacher's mean-pooled last hidden layer lives. The loss per
batch is

    kl_weight * T^2 * KL(softmax(teacher logits / T) || softmax(student logits / T))      (Hinton et al. 2015)
  + hidden_weight * (1 - cosine(body output, teacher's pooled hidden state))
  + label_weight * cross-entropy(student logits, true label)                              (0 by default)
  + anchor * mean over table rows of |row - its start|^2                                   (static bodies)

T^2 keeps the soft-label gradients the size of a hard-label loss's as T changes. The head starts as the least-squares
map from the initial body's outputs to the teacher's logits, so step 0 already predicts roughly what the teacher
does. Saved as the body's own folder plus `classifier.safetensors` (head) and `classifier.json` (labels); a saved
static classifier runs with numpy alone (`StaticClassifier`), a transformer one with torch (`TransformerClassifier`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

HEAD_WEIGHTS = "classifier.safetensors"
HEAD_CONFIG = "classifier.json"


@dataclass(frozen=True)
class ClassifierTraining:
    """One distillation of a classifier student. Units: steps (optimizer updates), rows per step, tokens."""

    steps: int = 600
    batch_size: int = 64
    learning_rate: float = 2e-2      # a static table and two linear maps: the rate static students train at
    temperature: float = 2.0         # T of the soft labels
    kl_weight: float = 1.0
    hidden_weight: float = 1.0
    label_weight: float = 0.0        # hard labels (the file's); 0 = the teacher's soft labels alone
    anchor: float = 0.0              # weight of the pull of each table row toward its start (mean squared
                                     # distance per row; static bodies): rare tokens overfit a few thousand texts
    max_length: int = 128            # student tokens per text
    warmup_fraction: float = 0.05
    length_window: int = 32          # batches drawn together and sorted by length (objectives.distillation)
    seed: int = 0


class ClassifierStudent(torch.nn.Module):
    """body(input_ids, attention_mask) -> (batch, teacher width); head -> logits."""

    def __init__(self, body, embedding_dim: int, labels: int):
        super().__init__()
        self.body = body
        self.head = torch.nn.Linear(embedding_dim, labels)

    def forward(self, input_ids, attention_mask):
        hidden = self.body(input_ids, attention_mask)
        return hidden, self.head(hidden)


def _encode(tokenizer, texts: Sequence[str], max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids padded with 0, lengths) of `texts` under the student's tokenizer."""
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    lengths = np.fromiter((len(e) for e in encoded), dtype=np.int64)
    ids = np.zeros((len(encoded), int(lengths.max())), dtype=np.int64)
    for row, e in enumerate(encoded):
        ids[row, : len(e)] = e
    return ids, lengths


def _batch(ids: np.ndarray, lengths: np.ndarray, rows: np.ndarray):
    width = int(lengths[rows].max())
    input_ids = torch.as_tensor(ids[rows, :width])
    mask = (torch.arange(width)[None, :] < torch.as_tensor(lengths[rows])[:, None]).long()
    return input_ids, mask


def init_head(student: ClassifierStudent, ids: np.ndarray, lengths: np.ndarray, logits: np.ndarray) -> None:
    """The head as the least-squares map (with bias, ridge 1e-3) from the body's outputs to the teacher's logits."""
    with torch.no_grad():
        hidden = torch.cat([student.body(*_batch(ids, lengths, np.arange(s, min(s + 256, len(ids)))))
                            for s in range(0, len(ids), 256)]).double()
        x = torch.cat([hidden, torch.ones(len(hidden), 1, dtype=torch.float64)], dim=1)
        y = torch.as_tensor(logits, dtype=torch.float64)
        ridge = 1e-3 * torch.eye(x.shape[1], dtype=torch.float64) * float((x * x).sum(0).mean())
        solution = torch.linalg.solve(x.T @ x + ridge, x.T @ y)
        student.head.weight.copy_(solution[:-1].T.float())
        student.head.bias.copy_(solution[-1].float())


def distil_classifier(student: ClassifierStudent, tokenizer, texts: Sequence[str], logits: np.ndarray,
                      hidden: np.ndarray, config: ClassifierTraining, labels: np.ndarray | None = None,
                      budget_seconds: float | None = None, probe_steps: int = 3) -> dict:
    """Train `student` in place on the teacher's `logits` and pooled `hidden` states of `texts` (and `labels`, ids,
    when `config.label_weight` > 0). Returns steps, seconds and the last losses. With `budget_seconds`, the
    `probe_steps` steps after the first are timed and training stops there (`skipped` with the predicted seconds)
    when all steps would not fit: a cut schedule would leave a worse student than none."""
    from objectives.distillation import _schedule, length_batches

    if len(texts) != len(logits) or len(texts) != len(hidden):
        raise ValueError(f"distil_classifier: {len(texts)} texts, {len(logits)} logits, {len(hidden)} states")
    if config.label_weight > 0 and (labels is None or len(labels) != len(texts)):
        raise ValueError("distil_classifier: label_weight > 0 needs a label per text")
    ids, lengths = _encode(tokenizer, texts, config.max_length)
    init_head(student, ids, lengths, logits)
    t = config.temperature
    soft = torch.softmax(torch.as_tensor(logits, dtype=torch.float32) / t, dim=1)
    target = torch.nn.functional.normalize(torch.as_tensor(hidden, dtype=torch.float32), dim=1)
    truth = torch.as_tensor(labels) if labels is not None else None
    batches = length_batches(lengths, config.batch_size, config.steps, config.length_window,
                             np.random.default_rng(config.seed))
    optimizer = torch.optim.AdamW(student.parameters(), lr=config.learning_rate, weight_decay=0.0)
    warmup = max(1, int(config.warmup_fraction * config.steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _schedule(s, config.steps, warmup))
    table = getattr(student.body, "embeddings", None)
    table = table.weight if isinstance(table, torch.nn.Embedding) else None
    start = table.detach().clone() if table is not None and config.anchor else None
    student.train()
    began, losses = time.perf_counter(), []
    for rows in batches:
        output, predicted = student(*_batch(ids, lengths, rows))
        log_p = torch.log_softmax(predicted / t, dim=1)
        loss = config.kl_weight * t * t * torch.nn.functional.kl_div(log_p, soft[rows], reduction="batchmean")
        loss = loss + config.hidden_weight * (
            1.0 - torch.nn.functional.cosine_similarity(output, target[rows], dim=1)).mean()
        if start is not None:
            loss = loss + config.anchor * (table - start).square().sum(1).mean()
        if config.label_weight > 0:
            loss = loss + config.label_weight * torch.nn.functional.cross_entropy(predicted, truth[rows])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.detach()))
        if len(losses) == 1:
            first_done = time.perf_counter()   # the first step also builds optimizer state: not timed
        if budget_seconds is not None and len(losses) == probe_steps + 1 < len(batches):
            predicted = (first_done - began) + (time.perf_counter() - first_done) / probe_steps * (len(batches) - 1)
            if predicted > budget_seconds:
                student.eval()
                return {"steps": probe_steps + 1, "seconds": time.perf_counter() - began, "skipped": True,
                        "predicted_seconds": predicted, "final_loss": float(np.mean(losses))}
    student.eval()
    return {"steps": len(batches), "seconds": time.perf_counter() - began, "final_loss": float(np.mean(losses[-20:]))}


def save_head(student: ClassifierStudent, directory: Path, labels: Sequence[str], dtype: str, settings: dict) -> None:
    """Write the head (`classifier.safetensors`, in `dtype`) and `classifier.json` (labels in id order)."""
    from safetensors.numpy import save_file

    np_dtype = {"float32": np.float32, "float16": np.float16, "bfloat16": np.float16}[dtype]
    tensors = {"weight": student.head.weight.detach().numpy().astype(np_dtype),
               "bias": student.head.bias.detach().numpy().astype(np_dtype)}
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(Path(directory) / HEAD_WEIGHTS),
              metadata={"format": "pt"})
    (Path(directory) / HEAD_CONFIG).write_text(json.dumps({"labels": list(labels), "dtype": dtype, **settings},
                                                          indent=2))


def head_bytes_bound(labels: int, embedding_dim: int, dtype: str) -> int:
    """Bytes the head file takes at most (tensors plus the safetensors header)."""
    from objectives.model_size import typed_file_bound

    return typed_file_bound([("weight", (labels, embedding_dim), dtype), ("bias", (labels,), dtype)])


def is_classifier_student(directory: Path) -> bool:
    return (Path(directory) / HEAD_CONFIG).is_file()


class StaticClassifier:
    """A saved static classifier student for inference with numpy: table lookup, mean, projection, head."""

    def __init__(self, directory: Path, max_length: int = 128):
        from safetensors.numpy import load_file

        from spaces.architecture.static import StaticEncoder

        directory = Path(directory)
        self.encoder = StaticEncoder(directory)
        head = load_file(str(directory / HEAD_WEIGHTS))
        self.weight = head["weight"].astype(np.float32).T
        self.bias = head["bias"].astype(np.float32)
        self.labels = tuple(json.loads((directory / HEAD_CONFIG).read_text())["labels"])
        self.max_length = max_length

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        return self.encoder.encode(texts, self.max_length) @ self.weight + self.bias

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Label ids (n,), in the order of `labels`."""
        return self.logits(texts).argmax(1)


class TransformerClassifier:
    """A saved transformer classifier student (student.save_student + head), float32 on the CPU."""

    def __init__(self, directory: Path, max_length: int = 128):
        from safetensors.numpy import load_file

        from spaces.architecture.student import load_student

        directory = Path(directory)
        self.student, self.tokenizer = load_student(directory)
        head = load_file(str(directory / HEAD_WEIGHTS))
        self.head = torch.nn.Linear(self.student.embedding_dim, head["weight"].shape[0])
        with torch.no_grad():
            self.head.weight.copy_(torch.as_tensor(head["weight"].astype(np.float32)))
            self.head.bias.copy_(torch.as_tensor(head["bias"].astype(np.float32)))
        self.labels = tuple(json.loads((directory / HEAD_CONFIG).read_text())["labels"])
        self.max_length = min(max_length, self.student.encoder.config.max_position_embeddings)

    def logits(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                batch = self.tokenizer(list(texts[start:start + batch_size]), padding=True, truncation=True,
                                       max_length=self.max_length, return_tensors="pt")
                out.append(self.head(self.student(batch["input_ids"], batch["attention_mask"])).numpy())
        return np.concatenate(out)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        return self.logits(texts).argmax(1)
