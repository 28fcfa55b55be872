"""The searched genome: the shape of a BERT-family student, with ranges read from the teacher's config.json.

A `Shape` fixes everything that sets a student's size and cost: layers, hidden width, attention heads (a divisor
of the width), feed-forward (intermediate) width, vocabulary size and position-table length. Zero layers is a
static student (spaces/architecture/static.py): a token table of `hidden` columns, mean-pooled and projected, as
model2vec builds; heads, intermediate and positions mean nothing there and are fixed at 1, 0 and 0, so one static
student has one genome. `int8` stores every weight matrix as int8 rows with a scale each (int8.py), tables and
transformers alike: half a float16 file per weight, so a size limit holds twice the parameters. Ranges come from the
teacher (a student is never wider, deeper or given more vocabulary than its teacher); the smallest vocabulary is
the number of tokens the reduced tokenizer cannot drop (specials and single characters, see vocabulary.py).
"""

from __future__ import annotations

import json
from dataclasses import asdict, astuple, dataclass, replace
from typing import ClassVar

import numpy as np

from search.protocols import Context, Space, UserError
from spaces.architecture.teacher import read_config, resolve_teacher

GENES = ("layers", "hidden", "heads", "intermediate", "vocab", "positions", "int8")


@dataclass(frozen=True)
class Shape:
    """One student architecture (all counts; widths in features)."""

    layers: int
    hidden: int
    heads: int
    intermediate: int
    vocab: int
    positions: int
    int8: bool = False   # weight matrices stored as int8 with one scale per row (vectors in the saved dtype)

    @property
    def static(self) -> bool:
        return self.layers == 0

    def describe(self) -> str:
        if self.static:
            return f"static W{self.hidden} V{self.vocab}" + (" int8" if self.int8 else "")
        return (f"L{self.layers} H{self.hidden} A{self.heads} I{self.intermediate} "
                f"V{self.vocab} P{self.positions}" + (" int8" if self.int8 else ""))


@dataclass(frozen=True)
class ShapeBounds:
    """Inclusive ranges of each gene. Widths move in steps of `width_step`; heads must divide the hidden width."""

    max_layers: int
    max_hidden: int
    max_heads: int
    max_intermediate: int
    min_vocab: int
    max_vocab: int
    min_positions: int
    max_positions: int
    width_step: int
    min_layers: int = 1    # 0 admits static students

    @staticmethod
    def from_teacher(config: dict, seq_length: int, width_step: int, min_vocab: int,
                     max_layers: int = 0, max_positions: int = 0, min_layers: int = 1) -> ShapeBounds:
        """Ranges from the teacher's config.json (a dict); `min_vocab` is the reduced tokenizer's floor;
        `max_layers` > 0 caps the depth below the teacher's, `max_positions` > 0 the position table;
        `min_layers` 0 lets the space hold static students."""
        max_vocab = int(config["vocab_size"])
        teacher_positions = int(config["max_position_embeddings"])
        max_positions = min(teacher_positions, max_positions) if max_positions > 0 else teacher_positions
        if seq_length > max_positions:
            raise UserError(f"seq_length: {seq_length} exceeds the teacher's {max_positions} positions; "
                            f"use at most {max_positions}")
        if not 1 <= min_vocab <= max_vocab:
            raise UserError(f"min_vocab: {min_vocab} is outside 1..{max_vocab} (the teacher's vocabulary)")
        layers = int(config["num_hidden_layers"])
        return ShapeBounds(max_layers=min(layers, max_layers) if max_layers > 0 else layers, max_hidden=int(config["hidden_size"]),
                           max_heads=int(config["num_attention_heads"]),
                           max_intermediate=int(config["intermediate_size"]), min_vocab=min_vocab,
                           max_vocab=max_vocab, min_positions=seq_length, max_positions=max_positions,
                           width_step=width_step, min_layers=min_layers)

    def widths(self, maximum: int) -> np.ndarray:
        """Allowed widths: multiples of `width_step` up to `maximum` (and `maximum` itself)."""
        values = np.arange(self.width_step, maximum + 1, self.width_step)
        return np.unique(np.append(values, maximum))

    def head_options(self, hidden: int) -> list[int]:
        """Head counts that divide `hidden`, at most the teacher's."""
        return [h for h in range(1, self.max_heads + 1) if hidden % h == 0]

    def smallest(self) -> Shape:
        """The cheapest shape of the space (the one to test a size limit against)."""
        return Shape(1, self.width_step, 1, self.width_step, self.min_vocab, self.min_positions)

    def contains(self, shape: Shape) -> bool:
        if shape.static:
            return (self.min_layers == 0 and shape.hidden in self.widths(self.max_hidden)
                    and (shape.heads, shape.intermediate, shape.positions) == (1, 0, 0)
                    and self.min_vocab <= shape.vocab <= self.max_vocab)
        return (max(1, self.min_layers) <= shape.layers <= self.max_layers
                and shape.hidden in self.widths(self.max_hidden)
                and shape.heads in self.head_options(shape.hidden)
                and shape.intermediate in self.widths(self.max_intermediate)
                and self.min_vocab <= shape.vocab <= self.max_vocab
                and self.min_positions <= shape.positions <= self.max_positions)


def _nearest(options, value: float) -> int:
    options = np.asarray(options)
    return int(options[np.argmin(np.abs(options - value))])


class TransformerShapeSpace(Space[Shape]):
    """Student shapes for a teacher encoder. Mutation moves one gene on a log scale (sizes span orders of
    magnitude); crossover swaps genes uniformly; heads are repaired to the nearest divisor of the hidden width."""

    @dataclass(frozen=True)
    class Config:
        teacher: str = ""       # teacher directory, or "" for the packaged all-MiniLM-L6-v2
        seq_length: int = 128   # tokens per input: the least number of positions a student keeps
        width_step: int = 16    # hidden and intermediate widths are multiples of this
        min_vocab: int = 0      # smallest vocabulary; 0 = the teacher's specials + single-character tokens
        max_layers: int = 0     # deepest student; 0 = the teacher's depth
        max_positions: int = 0  # longest position table; 0 = the teacher's (a student that only ever reads
                                # seq_length tokens wastes every row past it)
        min_layers: int = 1     # 0 = static students (a token table, see static.py) are in the space too
        int8: bool = True       # the int8 gene (int8.py); off = every genome stores its weights in the saved dtype

    emit_languages: ClassVar[tuple[str, ...]] = ("json", "python")

    def __init__(self, config: TransformerShapeSpace.Config, context: Context):
        super().__init__(config, context)
        if config.width_step < 1 or config.seq_length < 1:
            raise UserError("width_step, seq_length: must be positive integers")
        if config.min_layers not in (0, 1):
            raise UserError(f"min_layers: {config.min_layers} must be 0 (static students too) or 1")
        self.teacher_path = resolve_teacher(config.teacher)
        self.teacher_config = read_config(self.teacher_path)
        min_vocab = config.min_vocab or default_vocab_floor(self.teacher_path)
        self.bounds = ShapeBounds.from_teacher(self.teacher_config, config.seq_length, config.width_step, min_vocab,
                                               config.max_layers, config.max_positions, config.min_layers)

    # --- genome operators -------------------------------------------------------------------------------------
    def random(self, rng: np.random.Generator) -> Shape:
        b = self.bounds
        hidden = int(rng.choice(b.widths(b.max_hidden)))
        return self._repair(Shape(layers=int(rng.integers(b.min_layers, b.max_layers + 1)), hidden=hidden,
                                  heads=int(rng.choice(b.head_options(hidden))),
                                  intermediate=int(rng.choice(b.widths(b.max_intermediate))),
                                  vocab=int(round(np.exp(rng.uniform(np.log(b.min_vocab), np.log(b.max_vocab))))),
                                  positions=int(rng.integers(b.min_positions, b.max_positions + 1)),
                                  int8=bool(rng.integers(2)) if self.config.int8 else False))

    def initial(self, rng: np.random.Generator, size: int) -> list[Shape]:
        """Random shapes plus the smallest one, so a tight size limit still has a feasible start to grow from."""
        return [self.bounds.smallest()] + [self.random(rng) for _ in range(size - 1)]

    def mutate(self, genome: Shape, rng: np.random.Generator) -> Shape:
        return self._repair(self._mutate(genome, rng))

    def _mutate(self, genome: Shape, rng: np.random.Generator) -> Shape:
        b = self.bounds
        gene = GENES[int(rng.integers(len(GENES)))]
        factor = float(np.exp(rng.normal(0.0, 0.35)))
        value = getattr(genome, gene)
        if gene == "layers":
            new = int(np.clip(value + rng.choice([-1, 1]), b.min_layers, b.max_layers))
            if genome.static and new > 0:  # back to a transformer: the smallest layer of this width
                return self._repair(replace(genome, layers=new, intermediate=b.width_step,
                                            positions=b.min_positions))
            return self._repair(replace(genome, layers=new))
        if gene == "int8":
            return replace(genome, int8=not genome.int8 and self.config.int8)
        if gene == "hidden":
            hidden = _nearest(b.widths(b.max_hidden), value * factor)
            return replace(genome, hidden=hidden, heads=_nearest(b.head_options(hidden), genome.heads))
        if gene == "heads":
            options = b.head_options(genome.hidden)
            i = options.index(genome.heads) + int(rng.choice([-1, 1]))
            return replace(genome, heads=options[int(np.clip(i, 0, len(options) - 1))])
        if genome.static and gene in ("heads", "intermediate", "positions"):
            return genome
        if gene == "intermediate":
            return replace(genome, intermediate=_nearest(b.widths(b.max_intermediate), value * factor))
        if gene == "vocab":
            return replace(genome, vocab=int(np.clip(round(value * factor), b.min_vocab, b.max_vocab)))
        return replace(genome, positions=int(np.clip(round(value * factor), b.min_positions, b.max_positions)))

    def crossover(self, a: Shape, b: Shape, rng: np.random.Generator) -> tuple[Shape, Shape]:
        take = rng.random(len(GENES)) < 0.5
        first = dict(zip(GENES, (x if t else y for x, y, t in zip(astuple(a), astuple(b), take))))
        second = dict(zip(GENES, (y if t else x for x, y, t in zip(astuple(a), astuple(b), take))))
        return self._repair(Shape(**first)), self._repair(Shape(**second))

    def _repair(self, shape: Shape) -> Shape:
        """Heads to a divisor of the width; a static shape's unused genes to their fixed values; int8 off where the
        gene is."""
        b = self.bounds
        if shape.int8 and not self.config.int8:
            shape = replace(shape, int8=False)
        if shape.static:
            return replace(shape, heads=1, intermediate=0, positions=0)
        if shape.intermediate < b.width_step or shape.positions < b.min_positions:
            shape = replace(shape, intermediate=max(shape.intermediate, b.width_step),
                            positions=max(shape.positions, b.min_positions))
        options = b.head_options(shape.hidden)
        return shape if shape.heads in options else replace(shape, heads=_nearest(options, shape.heads))

    def key(self, genome: Shape) -> tuple[int, ...]:
        return astuple(genome)

    def describe(self, genome: Shape) -> str:
        return genome.describe()

    # --- output -----------------------------------------------------------------------------------------------
    def student_config(self, genome: Shape) -> dict:
        """The student's transformers config.json: the teacher's, with the searched sizes put in (for a static
        student, the table's own config, see static.py)."""
        if genome.static:
            return {"evoforge_static": True, "vocab_size": genome.vocab, "width": genome.hidden, "int8": genome.int8,
                    "embedding_dim": int(self.teacher_config["hidden_size"])}
        config = {k: v for k, v in self.teacher_config.items()
                  if not k.startswith("_") and k not in {"transformers_version", "gradient_checkpointing"}}
        config.update(num_hidden_layers=genome.layers, hidden_size=genome.hidden,
                      num_attention_heads=genome.heads, intermediate_size=genome.intermediate,
                      vocab_size=genome.vocab, max_position_embeddings=genome.positions, pad_token_id=0,
                      architectures=["BertModel"], model_type=self.teacher_config.get("model_type", "bert"))
        if genome.int8:   # the saved file holds int8 matrices: load it with spaces.architecture.student.load_student
            config["evoforge_int8"] = True
        return config

    def emit(self, genome: Shape, lang: str) -> str:
        if lang == "json":
            return json.dumps(self.student_config(genome), indent=2, sort_keys=True) + "\n"
        if lang == "python" and genome.static:
            raise UserError("--lang: a static student has no Python builder; emit json, or run evoforge compress")
        if lang == "python":
            fields = ", ".join(f"{k}={v!r}" for k, v in sorted(self.student_config(genome).items())
                               if k not in {"architectures", "model_type", "evoforge_int8"})
            stored = ("# Its weight matrices are stored as int8 rows with a scale each (spaces/architecture/int8.py).\n"
                      if genome.int8 else "")
            return ("# Student shape found by evoforge; build it with random weights, then distill.\n" + stored +
                    "from transformers import BertConfig, BertModel\n\n"
                    f"config = BertConfig({fields})\n"
                    "model = BertModel(config)\n")
        raise self.unsupported(lang)

    def as_dict(self, genome: Shape) -> dict:
        return asdict(genome)


def default_vocab_floor(teacher_path) -> int:
    """The teacher's special tokens plus its single-character tokens (both "x" and "##x" forms): the vocabulary a
    WordPiece tokenizer needs to spell any word of known characters without [UNK]."""
    vocab_file = teacher_path / "vocab.txt"
    if not vocab_file.is_file():
        return 1
    tokens = vocab_file.read_text(encoding="utf-8").splitlines()
    return sum(1 for t in tokens if len(t.removeprefix("##")) == 1 or (t.startswith("[") and not
                                                                          t.startswith("[unused")))
