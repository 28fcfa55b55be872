"""Unlabelled text for distillation: snippets from a folder of text/code files, or from the standard library.

The default corpus is the installed Python standard library (source and docstrings), which every machine with
Python has. Files are cut into snippets of whole lines (about `chunk_chars` characters each). The held-out split is
by file (a stable hash of the file's relative path), so no held-out snippet shares a file with a training one.
"""

from __future__ import annotations

import hashlib
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from search.protocols import UserError

_SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__", ".git", ".venv", "node_modules"}


@dataclass(frozen=True)
class CorpusConfig:
    """How much text to take and how to cut it."""

    chunk_chars: int = 200          # characters per snippet (whole lines; about 60-70 WordPiece tokens of code)
    min_chars: int = 40             # shorter snippets are dropped
    held_out_percent: int = 10      # percent of files kept for evaluation
    max_train: int = 12000          # snippets kept for training (sampled with the seed)
    max_held_out: int = 1000        # snippets kept for evaluation
    max_file_bytes: int = 2_000_000  # larger files are skipped (generated tables, data dumps)


@dataclass(frozen=True)
class Corpus:
    """Training and held-out snippets, and where they came from."""

    train: tuple[str, ...]
    held_out: tuple[str, ...]
    source: str


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _read_text(path: Path, max_bytes: int) -> str | None:
    """The file as UTF-8 text, or None if it is binary, undecodable or too large."""
    try:
        if path.stat().st_size > max_bytes:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    if b"\x00" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _files(root: Path, suffixes: set[str] | None) -> list[Path]:
    found = []
    for path in sorted(root.rglob("*")):
        if any(part in _SKIP_DIRS for part in path.relative_to(root).parts[:-1]):
            continue
        if path.is_file() and (suffixes is None or path.suffix in suffixes):
            found.append(path)
    return found


def chunk_lines(text: str, chunk_chars: int, min_chars: int) -> list[str]:
    """Consecutive lines joined until a snippet reaches `chunk_chars`; short or blank snippets dropped."""
    chunks, current, length = [], [], 0
    for line in text.splitlines():
        line = line.rstrip()
        if not line.strip():
            continue
        current.append(line)
        length += len(line) + 1
        if length >= chunk_chars:
            chunks.append("\n".join(current)[: 2 * chunk_chars])
            current, length = [], 0
    if current:
        chunks.append("\n".join(current)[: 2 * chunk_chars])
    return [c for c in chunks if len(c.strip()) >= min_chars]


def _held_out(relative: str, percent: int) -> bool:
    return int(hashlib.sha1(relative.encode()).hexdigest()[:8], 16) % 100 < percent


def load_corpus(data: str | None, config: CorpusConfig = CorpusConfig(), seed: int = 0) -> Corpus:
    """Snippets from `data` (a folder) or, when None/"", from the standard library's .py files."""
    if data:
        root = Path(data).expanduser()
        if not root.is_dir():
            raise UserError(f"--data: {data!r} is not a directory; pass a folder of text or code files")
        files, source = _files(root, None), str(root.resolve())
    else:
        root = stdlib_root()
        files, source = _files(root, {".py"}), f"python standard library ({root})"
    train: list[str] = []
    held_out: list[str] = []
    for path in files:
        text = _read_text(path, config.max_file_bytes)
        if not text:
            continue
        snippets = chunk_lines(text, config.chunk_chars, config.min_chars)
        relative = str(path.relative_to(root))
        (held_out if _held_out(relative, config.held_out_percent) else train).extend(snippets)
    if not train and not held_out:
        raise UserError(f"--data: {source!r} has no text files with at least {config.min_chars} characters; "
                        "pass a folder of UTF-8 text or code")
    if not train or not held_out:
        # Too few files for a split by file: split the snippets instead.
        every = train + held_out
        cut = max(1, len(every) * config.held_out_percent // 100)
        if len(every) < 2:
            raise UserError(f"--data: {source!r} holds a single snippet; distillation needs more text")
        train, held_out = every[cut:], every[:cut]
    # Separate streams: the held-out sample must not change with the number of training snippets drawn.
    train = _sample(sorted(set(train)), config.max_train, np.random.default_rng([seed, 0]))
    held_out = _sample(sorted(set(held_out) - set(train)), config.max_held_out, np.random.default_rng([seed, 1]))
    return Corpus(train=tuple(train), held_out=tuple(held_out), source=source)


def _sample(items: list[str], k: int, rng: np.random.Generator) -> list[str]:
    if len(items) <= k:
        return [items[i] for i in rng.permutation(len(items))]
    return [items[i] for i in rng.choice(len(items), size=k, replace=False)]
