"""A classifier teacher: a Hugging Face encoder with a sequence-classification head, found on disk.

Recognised by its config.json (`architectures` names a `...ForSequenceClassification` class, as `save_pretrained`
writes it); its labels are `id2label`. One pass over a text list gives what a classifier student is distilled on:
the logits (soft labels, softened by a temperature in training) and the last hidden layer mean-pooled over tokens
(the hidden-state target; a static student's table starts from the same pass's per-token means, as for an
embedding teacher, see teacher.TokenStates). The pass is cached on disk, keyed by the weights and the texts.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from search.protocols import UserError
from spaces.architecture.teacher import Teacher, TokenStates, pool, read_config, require_weights, weights_fingerprint

HEAD_SUFFIX = "ForSequenceClassification"


def classifier_architecture(path: Path) -> str | None:
    """The `...ForSequenceClassification` class a model folder's config.json names, or None (an encoder alone)."""
    config = Path(path) / "config.json"
    if not config.is_file():
        return None
    try:
        architectures = json.loads(config.read_text()).get("architectures") or []
    except (json.JSONDecodeError, AttributeError):
        return None
    return next((a for a in architectures if isinstance(a, str) and a.endswith(HEAD_SUFFIX)), None)


@dataclass
class ClassifierTeacher:
    """The loaded classifier (eval mode, float32), its encoder as a `Teacher` (for the student's start), labels."""

    path: Path
    model: Any
    encoder: Teacher
    labels: tuple[str, ...]   # id order

    @property
    def tokenizer(self):
        return self.encoder.tokenizer

    @property
    def embedding_dim(self) -> int:
        return self.encoder.embedding_dim

    def outputs(self, texts: Sequence[str], max_length: int, batch_size: int = 64
                ) -> tuple[np.ndarray, np.ndarray, TokenStates]:
        """(logits (n, labels), mean-pooled last hidden layer (n, width), per-token mean states), float32, texts
        truncated to `max_length` tokens, batched by length, returned in the order given."""
        import torch

        width = self.embedding_dim
        order = np.argsort([len(t) for t in texts], kind="stable")
        logits = np.empty((len(texts), len(self.labels)), dtype=np.float32)
        pooled = np.empty((len(texts), width), dtype=np.float32)
        vocab = max(self.tokenizer.get_vocab().values()) + 1
        sums = torch.zeros(vocab, width, dtype=torch.float64)
        counts = torch.zeros(vocab, dtype=torch.float64)
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                rows = order[start:start + batch_size]
                batch = self.tokenizer([texts[i] for i in rows], padding=True, truncation=True,
                                       max_length=max_length, return_tensors="pt")
                out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                 output_hidden_states=True)
                states, mask = out.hidden_states[-1], batch["attention_mask"]
                logits[rows] = out.logits.float().numpy()
                pooled[rows] = pool(states, mask, "mean").float().numpy()
                kept = mask.bool()
                ids = batch["input_ids"][kept]
                sums.index_add_(0, ids, states[kept].double())
                counts.index_add_(0, ids, torch.ones_like(ids, dtype=torch.float64))
        seen = torch.nonzero(counts).flatten()
        tokens = TokenStates(ids=seen.numpy(), counts=counts[seen].long().numpy(),
                             means=(sums[seen] / counts[seen, None]).float().numpy())
        return logits, pooled, tokens

    def predict(self, texts: Sequence[str], max_length: int) -> np.ndarray:
        """Label ids (n,) of `texts`: tokenize, forward, argmax (what a user of the teacher runs)."""
        import torch

        with torch.inference_mode():
            batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=max_length,
                                   return_tensors="pt")
            logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return logits.argmax(-1).numpy()


def load_classifier_teacher(path: Path) -> ClassifierTeacher:
    """Load a classifier folder offline; one that transformers cannot read is a UserError."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    path = require_weights(Path(path))
    config = read_config(path)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        model = AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise UserError(f"teacher: transformers cannot load the classifier {str(path)!r} offline "
                        f"({str(exc).splitlines()[0]}); pass a directory with weights and a tokenizer") from exc
    model.eval()
    id2label = model.config.id2label
    labels = tuple(str(id2label[i]) for i in range(model.config.num_labels))
    encoder = Teacher(path=path, model=model.base_model, tokenizer=tokenizer, config=config, pooling="mean")
    return ClassifierTeacher(path=path, model=model, encoder=encoder, labels=labels)


def cached_outputs(teacher: ClassifierTeacher, texts: Sequence[str], max_length: int, cache_dir: Path | None
                   ) -> tuple[np.ndarray, np.ndarray, TokenStates]:
    """`teacher.outputs(texts)`, read from / written to `cache_dir` (keyed by weights, length and texts)."""
    if cache_dir is None:
        return teacher.outputs(texts, max_length)
    digest = hashlib.sha256(f"classifier|{weights_fingerprint(teacher.path)}|{max_length}".encode())
    for text in texts:
        digest.update(text.encode("utf-8", "replace"))
        digest.update(b"\x00")
    file = Path(cache_dir) / f"classifier-{digest.hexdigest()[:24]}.npz"
    if file.is_file():
        with np.load(file) as cached:
            if cached["logits"].shape == (len(texts), len(teacher.labels)):
                return cached["logits"], cached["pooled"], TokenStates(ids=cached["ids"], counts=cached["counts"],
                                                                       means=cached["means"])
    logits, pooled, tokens = teacher.outputs(texts, max_length)
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(f"{file.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, logits=logits, pooled=pooled, ids=tokens.ids, counts=tokens.counts, means=tokens.means)
    tmp.replace(file)
    return logits, pooled, tokens
