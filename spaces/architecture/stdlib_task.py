"""A labelled code task built from the installed Python standard library: which package does a snippet come from?

No fine-tuned classifier ships offline, so the classifier benchmark makes its own task from text every machine has.
Each label is a top-level stdlib package (asyncio, email, ...); its files are cut into snippets of whole lines (as
the distillation corpus is, spaces/architecture/corpus.py) and each snippet is labelled with its package. The split
is by file (a stable hash of the file's path): a held-out snippet never shares a file with a training one, so a
model cannot score by remembering a file's identifiers. Per package at most `train_per_label` / `held_out_per_label`
snippets are drawn with the seed, so the classes are balanced and the task is a pure function of (Python version,
parameters, seed). Training rows keep their file as their group, so a validation split can be by file too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from spaces.architecture.corpus import chunk_lines, stdlib_root
from spaces.architecture.labelled import LabelledData, held_out_key

# Packages with enough source to fill both splits in Python 3.11-3.13, and distinct in purpose.
PACKAGES = ("asyncio", "ctypes", "email", "importlib", "multiprocessing", "tkinter", "unittest", "xml")


@dataclass(frozen=True)
class PackageTask:
    """Parameters of the task; with the Python version they fix its rows."""

    packages: tuple[str, ...] = PACKAGES
    chunk_chars: int = 200          # characters per snippet (about 60-70 WordPiece tokens of code)
    min_chars: int = 40
    held_out_percent: int = 20      # percent of each package's files held out
    train_per_label: int = 400
    held_out_per_label: int = 100
    seed: int = 0

    def key(self) -> str:
        """A name for caches: every parameter and the Python version the text comes from."""
        import sys

        fields = "-".join(f"{v}" for k, v in asdict(self).items() if k != "packages")
        return f"stdlib{sys.version_info.major}{sys.version_info.minor}-{len(self.packages)}pkg-{fields}"


def package_task(task: PackageTask = PackageTask()) -> LabelledData:
    """The rows of `task` from this Python's standard library, training rows first, each side shuffled."""
    root = stdlib_root()
    train, held = [], []
    for k, package in enumerate(task.packages):
        folder = root / package
        sides: tuple[dict[str, str], dict[str, str]] = ({}, {})  # snippet -> its (first) file
        for path in sorted(folder.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            relative = str(path.relative_to(root))
            snippets = chunk_lines(text, task.chunk_chars, task.min_chars)
            side = sides[held_out_key(relative, task.held_out_percent)]
            for snippet in snippets:
                side.setdefault(snippet, relative)
        for side, cap, out, stream in ((sides[0], task.train_per_label, train, 0),
                                       (sides[1], task.held_out_per_label, held, 1)):
            items = sorted(side)
            rng = np.random.default_rng([task.seed, stream, k])
            chosen = rng.permutation(len(items))[:cap]
            out.extend((items[i], package, side[items[i]]) for i in sorted(chosen))
    order_train = np.random.default_rng([task.seed, 2]).permutation(len(train))
    order_held = np.random.default_rng([task.seed, 3]).permutation(len(held))
    return LabelledData(train=tuple(train[i][0] for i in order_train),
                        train_labels=tuple(train[i][1] for i in order_train),
                        held_out=tuple(held[i][0] for i in order_held),
                        held_out_labels=tuple(held[i][1] for i in order_held),
                        source=f"python standard library ({root}), packages {', '.join(task.packages)}",
                        train_groups=tuple(train[i][2] for i in order_train))
