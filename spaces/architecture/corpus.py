"""Unlabelled text for distillation, per domain: a folder of the user's files, or text installed on the machine.

The default corpus covers what a general sentence encoder is for, in two domains, both built from text that ships
with the machine (no downloads):
  code   the installed Python standard library's source;
  prose  English documentation and prose: Debian package docs under /usr/share/doc (READMEs, .txt/.md/.rst, gzipped
         ones too; no changelogs or copyright files), the docs and METADATA descriptions that PyPI packages install
         in site-packages, and the standard library's docstrings. Paragraphs that do not read as English (too few
         letters or common English words: tables, code samples, other languages) are dropped.
Files are cut into snippets of whole lines (about `chunk_chars` characters each; training files, optionally, into
shorter ones of `train_chunk_chars`: more targets for the same teacher pass). The held-out split is by file (a
stable hash of the file's path), so no held-out snippet shares a file with a training one; each domain keeps its
own held-out set, so the report can give fidelity per domain.
"""

from __future__ import annotations

import ast
import collections
import functools
import gzip
import hashlib
import re
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from search.protocols import UserError

_SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__", ".git", ".venv", "node_modules"}
_PROSE_SUFFIXES = {".txt", ".md", ".rst", ".markdown"}
_PROSE_NAMES = ("readme", "news", "faq", "todo", "authors", "thanks", "history", "description", "metadata")
# The most frequent English function words: a paragraph of English prose has 25-50% of its words among them;
# code, tables and other languages have few.
_ENGLISH = frozenset("""the of and to a in is that for it as with be on by this are or not from at an which can
you your if will all has have but one when they their there more these was what other may use used using also its
into than then only so such no each should must would how any we our""".split())
_WORD = re.compile(r"[A-Za-z]+")
DEFAULT_DOC_ROOT = Path("/usr/share/doc")


@dataclass(frozen=True)
class CorpusConfig:
    """How much text to take and how to cut it."""

    chunk_chars: int = 200          # characters per snippet (whole lines; about 60-70 WordPiece tokens of code)
    train_chunk_chars: int = 0      # characters per training snippet (0 = `chunk_chars`): shorter training
                                    # snippets give the teacher's pass more targets per token it reads
    min_chars: int = 40             # shorter snippets are dropped
    held_out_percent: int = 10      # percent of files kept for evaluation
    max_train: int = 12000          # snippets kept for training, all domains together (sampled with the seed;
                                    # split evenly between domains, a domain short of text leaving its share to
                                    # the others)
    max_held_out: int = 1000        # snippets kept for evaluation, per domain
    max_file_bytes: int = 2_000_000  # larger files are skipped (generated tables, data dumps)
    domains: tuple[str, ...] = ("code", "prose")  # of the default corpus
    doc_root: str = str(DEFAULT_DOC_ROOT)         # Debian documentation folder ("" = none)
    prose_sources: tuple[str, ...] = ("doc", "site", "docstrings")  # doc_root, site-packages docs, stdlib docstrings
    min_english: float = 0.2        # prose snippets keep only when this fraction of words are common English words


@dataclass(frozen=True)
class Corpus:
    """Training and held-out snippets, and where they came from. `train` and `held_out` hold every domain (in
    domain order); `held_out_domains` names each held-out snippet's domain (the same order)."""

    train: tuple[str, ...]
    held_out: tuple[str, ...]
    source: str
    held_out_domains: tuple[str, ...] = field(default=())
    train_domains: tuple[str, ...] = field(default=())

    def domain_held_out(self) -> dict[str, tuple[str, ...]]:
        """{domain: its held-out snippets}, in the order the domains were loaded."""
        out: dict[str, list[str]] = {}
        labels = self.held_out_domains or ("data",) * len(self.held_out)
        for text, domain in zip(self.held_out, labels):
            out.setdefault(domain, []).append(text)
        return {k: tuple(v) for k, v in out.items()}


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def site_packages_root() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def _decode(data: bytes) -> str | None:
    if b"\x00" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _read_text(path: Path, max_bytes: int) -> str | None:
    """The file as UTF-8 text (gunzipped for .gz), or None if it is binary, undecodable or too large."""
    try:
        if path.stat().st_size > max_bytes:
            return None
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
            if len(data) > max_bytes:
                return None
    except (OSError, EOFError, gzip.BadGzipFile):
        return None
    return _decode(data)


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


def english_fraction(text: str) -> float:
    """Fraction of the words of `text` that are common English function words (0 for a text without words)."""
    words = _WORD.findall(text.lower())
    return sum(w in _ENGLISH for w in words) / len(words) if words else 0.0


def is_prose(text: str, min_english: float) -> bool:
    """English prose: mostly letters and spaces, with enough common English words."""
    letters = sum(map(str.isalpha, text)) + sum(map(str.isspace, text))  # disjoint; map is 4x a generator
    return letters >= 0.85 * len(text) and english_fraction(text) >= min_english


def _held_out(relative: str, percent: int) -> bool:
    return int(hashlib.sha1(relative.encode()).hexdigest()[:8], 16) % 100 < percent


def _is_prose_file(path: Path) -> bool:
    name = path.name.lower().removesuffix(".gz")
    if name.startswith(("changelog", "copyright")):
        return False
    return Path(name).suffix in _PROSE_SUFFIXES or name.startswith(_PROSE_NAMES)


def _docstrings(source: str) -> str:
    """The docstrings of a Python module (module, classes, functions), separated by blank lines."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return ""
    nodes = [tree] + [n for n in _statements(tree)
                      if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    return "\n\n".join(d for d in (ast.get_docstring(n) for n in nodes) if d)


def _statements(tree: ast.AST):
    """The statements of `tree` in `ast.walk`'s breadth-first order, without entering expressions (where no
    function or class can be defined): a tenth of the nodes, the same definitions in the same order."""
    queue = collections.deque([tree])
    while queue:
        node = queue.popleft()
        for name in node._fields:
            value = getattr(node, name, None)
            if isinstance(value, list):
                queue.extend(v for v in value if isinstance(v, (ast.stmt, ast.excepthandler, ast.match_case)))
        if node is not tree:
            yield node


def _code_documents(config: CorpusConfig) -> list[tuple[str, str]]:
    return list(_stdlib_sources(config.max_file_bytes))


@functools.lru_cache(maxsize=2)
def _stdlib_sources(max_file_bytes: int) -> tuple[tuple[str, str], ...]:
    """(path relative to the stdlib, source) of every readable stdlib .py file; read once per process (the code
    domain and the docstrings both need it)."""
    root = stdlib_root()
    return tuple((str(p.relative_to(root)), t) for p in _files(root, {".py"})
                 if (t := _read_text(p, max_file_bytes)))


def _prose_documents(config: CorpusConfig) -> list[tuple[str, str]]:
    """(key for the split, text) of every English documentation file found on the machine."""
    documents = []
    unknown = set(config.prose_sources) - {"doc", "site", "docstrings"}
    if unknown:
        raise UserError(f"prose_sources: {sorted(unknown)} not known; choose among doc, site, docstrings")
    if "doc" in config.prose_sources and config.doc_root and Path(config.doc_root).is_dir():
        root = Path(config.doc_root)
        documents += [(f"doc/{p.relative_to(root)}", t) for p in _files(root, None)
                      if _is_prose_file(p) and (t := _read_text(p, config.max_file_bytes))]
    site = site_packages_root()
    if "site" in config.prose_sources and site.is_dir():
        for p in sorted(site.rglob("*")):
            if "__pycache__" in p.parts or not p.is_file():
                continue
            if p.suffix in _PROSE_SUFFIXES or (p.name == "METADATA" and p.parent.name.endswith(".dist-info")):
                if (t := _read_text(p, config.max_file_bytes)):
                    documents.append((f"site/{p.relative_to(site)}", t))
    # Docstrings use the code file's key, so a module's docstrings are held out exactly when its source is.
    if "docstrings" in config.prose_sources:
        documents += [(key, d) for key, text in _code_documents(config) if (d := _docstrings(text))]
    return documents


def _split(documents: list[tuple[str, str]], config: CorpusConfig, keep=None) -> tuple[list[str], list[str]]:
    train: list[str] = []
    held_out: list[str] = []
    for key, text in documents:
        held = _held_out(key, config.held_out_percent)
        chunk = config.chunk_chars if held else (config.train_chunk_chars or config.chunk_chars)
        snippets = chunk_lines(text, chunk, config.min_chars)
        if keep is not None:
            snippets = [s for s in snippets if keep(s)]
        (held_out if held else train).extend(snippets)
    return train, held_out


def load_corpus(data: str | None, config: CorpusConfig = CorpusConfig(), seed: int = 0) -> Corpus:
    """Snippets from `data` (a folder, one domain "data") or, when None/"", the default domains (see above)."""
    if data:
        root = Path(data).expanduser()
        if not root.is_dir():
            raise UserError(f"--data: {data!r} is not a directory; pass a folder of text or code files")
        source = str(root.resolve())
        documents = [(str(p.relative_to(root)), t) for p in _files(root, None)
                     if (t := _read_text(p, config.max_file_bytes))]
        splits = {"data": _split(documents, config)}
    else:
        loaders = {"code": (_code_documents, None),
                   "prose": (_prose_documents, lambda s: is_prose(s, config.min_english))}
        unknown = [d for d in config.domains if d not in loaders]
        if unknown or not config.domains:
            raise UserError(f"domains: {unknown or '()'} not known; choose among {', '.join(loaders)}")
        splits = {d: _split(loaders[d][0](config), config, loaders[d][1]) for d in config.domains}
        source = "; ".join({"code": f"code: python standard library ({stdlib_root()})",
                            "prose": f"prose: {config.doc_root or 'no doc folder'}, "
                                     f"{site_packages_root()} docs, stdlib docstrings"}[d] for d in splits)
    for domain, (train, held_out) in splits.items():
        if not train and not held_out:
            raise UserError(f"--data: {source!r} has no text files with at least {config.min_chars} characters; "
                            "pass a folder of UTF-8 text or code")
        if not train or not held_out:
            # Too few files for a split by file: split the snippets instead.
            every = train + held_out
            if len(every) < 2:
                raise UserError(f"--data: {source!r} holds a single snippet; distillation needs more text")
            cut = max(1, len(every) * config.held_out_percent // 100)
            splits[domain] = (every[cut:], every[:cut])
    shares = _shares(config.max_train, {d: len(set(t)) for d, (t, _) in splits.items()})
    train_all, held_all, train_labels, held_labels = [], [], [], []
    for k, (domain, (train, held_out)) in enumerate(splits.items()):
        # Separate streams per domain and split: the held-out sample must not change with the training draw.
        train = _sample(sorted(set(train)), shares[domain], np.random.default_rng([seed, 0, k]))
        held = _sample(sorted(set(held_out) - set(train)), config.max_held_out, np.random.default_rng([seed, 1, k]))
        train_all += train
        held_all += held
        train_labels += [domain] * len(train)
        held_labels += [domain] * len(held)
    return Corpus(train=tuple(train_all), held_out=tuple(held_all), source=source,
                  held_out_domains=tuple(held_labels), train_domains=tuple(train_labels))


def _shares(total: int, available: dict[str, int]) -> dict[str, int]:
    """An even split of `total` snippets over domains; a domain with fewer gives the rest to the others."""
    shares = dict.fromkeys(available, 0)
    left, open_ = total, sorted(available, key=lambda d: available[d])
    while open_ and left > 0:
        even = left // len(open_)
        domain = open_.pop(0)
        shares[domain] = min(available[domain], even if open_ else left)
        left -= shares[domain]
    return shares


def _sample(items: list[str], k: int, rng: np.random.Generator) -> list[str]:
    if len(items) <= k:
        return [items[i] for i in rng.permutation(len(items))]
    return [items[i] for i in rng.choice(len(items), size=k, replace=False)]
