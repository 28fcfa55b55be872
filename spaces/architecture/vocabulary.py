"""The student's tokenizer: the teacher's WordPiece vocabulary cut to `size` tokens chosen from the corpus.

Kept, in order: the special tokens, every single-character token (plain and "##" continuation) for the characters
the corpus uses (so any word of those characters can still be spelled, without [UNK]), then the teacher's tokens
by frequency on the corpus, then, if the corpus uses fewer, the rest of the teacher's vocabulary in id order.
Keeping teacher tokens (not training a new tokenizer) lets the student's embedding rows start from the teacher's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from search.protocols import UserError

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


@dataclass(frozen=True)
class ReducedVocabulary:
    """The kept tokens (student id = position) and each one's id in the teacher's vocabulary."""

    tokens: tuple[str, ...]
    teacher_ids: np.ndarray

    def __len__(self) -> int:
        return len(self.tokens)


@dataclass(frozen=True)
class VocabularyPlan:
    """What a corpus needs from the teacher's vocabulary: the mandatory tokens and the rest ranked by use."""

    mandatory: tuple[int, ...]     # teacher ids that every reduced vocabulary keeps
    ranked: tuple[int, ...]        # the other teacher ids, most used on the corpus first
    used: int = 0                  # how many of `ranked` the corpus uses at all (the rest follow in id order)

    @property
    def floor(self) -> int:
        return len(self.mandatory)


def plan_vocabulary(teacher_tokenizer: Any, texts: Sequence[str]) -> VocabularyPlan:
    """Count the teacher's tokens on `texts` and decide what a reduced vocabulary must keep."""
    vocab = teacher_tokenizer.get_vocab()
    missing = [t for t in SPECIALS if t not in vocab]
    if missing:
        raise UserError(f"teacher: its tokenizer lacks {', '.join(missing)}; only BERT WordPiece teachers are "
                        "supported")
    size = max(vocab.values()) + 1
    counts = np.zeros(size, dtype=np.int64)
    encoded = teacher_tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    if encoded:
        flat = np.fromiter((i for ids in encoded for i in ids), dtype=np.int64)
        counts += np.bincount(flat, minlength=size)[:size]
    lower = bool(getattr(teacher_tokenizer, "do_lower_case", True))
    characters = sorted({c for text in texts for c in (text.lower() if lower else text) if not c.isspace()})
    mandatory = [vocab[t] for t in SPECIALS]
    for c in characters:
        for token in (c, "##" + c):
            if token in vocab and vocab[token] not in mandatory:
                mandatory.append(vocab[token])
    chosen = set(mandatory)
    unused = {i for t, i in vocab.items() if t.startswith("[unused")}
    by_use = [int(i) for i in np.argsort(-counts, kind="stable") if counts[i] > 0 and i not in chosen]
    rest = [i for i in sorted(vocab.values()) if i not in chosen and counts[i] == 0 and i not in unused]
    return VocabularyPlan(mandatory=tuple(mandatory), ranked=tuple(by_use + rest), used=len(by_use))


def reduce_vocabulary(teacher_tokenizer: Any, plan: VocabularyPlan, size: int) -> ReducedVocabulary:
    """The first `size` tokens of the plan, specials first (so [PAD] is id 0), others in teacher id order."""
    if size < plan.floor:
        raise UserError(f"vocab: {size} is below the {plan.floor} tokens this corpus needs (specials and "
                        "single characters)")
    available = plan.floor + len(plan.ranked)
    if size > available:
        raise UserError(f"vocab: {size} exceeds the {available} usable tokens of the teacher")
    specials = list(plan.mandatory[: len(SPECIALS)])
    others = sorted(plan.mandatory[len(SPECIALS):] + plan.ranked[: size - plan.floor])
    ids = np.asarray(specials + others, dtype=np.int64)
    inverse = {i: t for t, i in teacher_tokenizer.get_vocab().items()}
    return ReducedVocabulary(tokens=tuple(inverse[int(i)] for i in ids), teacher_ids=ids)


def student_tokenizer(teacher_tokenizer: Any, vocabulary: ReducedVocabulary, max_length: int):
    """A BERT WordPiece tokenizer over the reduced vocabulary, with the teacher's normalisation settings."""
    from transformers import BertTokenizer

    backend = getattr(teacher_tokenizer, "backend_tokenizer", None)
    normalizer = backend.normalizer.__getstate__() if backend is not None and backend.normalizer else None
    strip_accents = None
    if normalizer:
        import json

        strip_accents = json.loads(normalizer).get("strip_accents")
    return BertTokenizer(vocab={t: i for i, t in enumerate(vocabulary.tokens)},
                         do_lower_case=bool(getattr(teacher_tokenizer, "do_lower_case", True)),
                         strip_accents=strip_accents, model_max_length=max_length)
