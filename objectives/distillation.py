"""Knowledge distillation: train a student on the teacher's sentence embeddings of unlabelled text, and score it.

The loss is 1 - cosine(student embedding, teacher embedding) on training snippets, the quantity the held-out score
measures (optionally plus a word-level term, see `distill`); AdamW with linear warm-up then cosine decay; gradient clipping at `clip_norm`. Budgets are in steps (not
seconds) so a score depends only on the genome and the seed. Runs on the GPU when one is present.

`Distillation` is the objective the compress command uses to re-rank the GA's best shapes: a short fixed-budget
training of each candidate, scored by mean cosine similarity to the teacher on held-out text.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from search.protocols import Evaluation, Objective, UserError
from spaces.architecture.corpus import Corpus, CorpusConfig, load_corpus
from spaces.architecture.fidelity import mean_cosine
from spaces.architecture.shapes import Shape
from spaces.architecture.teacher import (
    Teacher,
    TokenStates,
    WordTargets,
    cached_embeddings,
    cached_targets,
    load_teacher,
    pool,
)
from spaces.architecture.vocabulary import VocabularyPlan, plan_vocabulary, reduce_vocabulary, student_tokenizer


def default_cache_dir() -> Path:
    """Where teacher targets are cached: $EVOFORGE_CACHE, else ~/.cache/evoforge."""
    return Path(os.environ.get("EVOFORGE_CACHE", Path.home() / ".cache" / "evoforge"))


@dataclass(frozen=True)
class TrainingConfig:
    """One distillation run. Units: steps (optimizer updates), snippets per step, tokens."""

    steps: int = 300
    batch_size: int = 32
    learning_rate: float = 2e-3       # peak; train_student divides it by sqrt(layers) for deeper students
    weight_decay: float = 0.01
    warmup_fraction: float = 0.05     # of steps, linear from 0
    clip_norm: float = 1.0
    max_length: int = 128             # student tokens per snippet (a reduced vocabulary needs more than the
                                      # teacher: about 2x at the smallest, see vocabulary.py)
    threads: int = 1                  # torch CPU threads; 1 is fastest on a shared CPU (see distill), 0 = torch's
    word_weight: float = 0.0          # weight of the word-level loss (0 = sentence embeddings only; see distill)
    static_lr_scale: float = 10.0     # static students (a table and one linear map) train at this x the rate
    length_window: int = 32           # batches drawn together and sorted by length (less padding); 1 = random
    seed: int = 0
    checkpoint_every: int = 0         # steps between checkpoints; 0 = none
    progress: bool = False            # show a progress bar (loss, snippets/s)


@dataclass
class TrainingResult:
    steps: int
    seconds: float
    snippets_per_s: float
    tokens_per_s: float
    final_loss: float
    losses: list[float] = field(default_factory=list)
    restored_step: int | None = None   # set when training diverged and the best earlier weights were kept


def device_for_training() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _schedule(step: int, total: int, warmup: int) -> float:
    """Learning-rate multiplier: linear warm-up to 1, then cosine decay to 0."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _progress_bar(enabled: bool, total: int, start: int):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(TextColumn("distill"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("loss {task.fields[loss]:.4f}"), TextColumn("{task.fields[rate]:.0f} snippets/s"),
                        TimeRemainingColumn(), disable=not enabled, transient=False)
    task = progress.add_task("distill", total=total, completed=start, loss=float("nan"), rate=0.0)
    return progress, task


def distill(student, tokenizer, texts: Sequence[str], targets: np.ndarray, config: TrainingConfig,
            checkpoint_dir: Path | None = None, stop_at: int | None = None,
            words: WordTargets | None = None) -> TrainingResult:
    """Train `student` in place so its embeddings of `texts` align with `targets` (teacher embeddings).

    With `config.word_weight` > 0 and the teacher's `words` (its token states averaged per word), the loss adds
    that weight times the mean (1 - cosine) between each word's projected student state and the teacher's: one
    target per word instead of one per snippet, which is what a small corpus lacks (bench/README.md).

    With `checkpoint_dir` and `checkpoint_every`, the model, optimizer and step are saved there and a run finding a
    checkpoint resumes from it (the batch order is a function of the seed and the step, so resuming is exact).
    `stop_at` ends this session after that many steps (a checkpoint is written there), to split a budget.
    """
    import torch

    if len(texts) != len(targets) or not len(texts):
        raise ValueError(f"distill: {len(texts)} texts for {len(targets)} targets")
    use_words = config.word_weight > 0
    if use_words and (words is None or len(words) != len(texts)):
        raise ValueError("distill: word_weight > 0 needs the teacher's word states for every text")
    if config.threads:
        # On a loaded 2-core machine one intra-op thread trained a 2-layer student 7x faster than two (measured:
        # 0.34 s vs 2.49 s per step of 32 x 64 tokens): idle threads spin while others hold the cores.
        torch.set_num_threads(config.threads)
    device = device_for_training()
    student.to(device).train()
    batch_encoding = tokenizer(list(texts), truncation=True, max_length=config.max_length)
    encoded = batch_encoding["input_ids"]
    lengths = np.fromiter((len(e) for e in encoded), dtype=np.int64)
    ids = np.zeros((len(encoded), int(lengths.max())), dtype=np.int64)
    word_ids = np.full(ids.shape, -1, dtype=np.int64) if use_words else None
    for row, e in enumerate(encoded):
        ids[row, : len(e)] = e
        if use_words:
            word_ids[row, : len(e)] = [-1 if w is None else w for w in batch_encoding.word_ids(row)]
    target = torch.nn.functional.normalize(torch.as_tensor(targets, dtype=torch.float32), dim=1).to(device)
    batches = length_batches(lengths, config.batch_size, config.steps, config.length_window,
                             np.random.default_rng(config.seed))
    decay = [p for n, p in student.named_parameters() if p.ndim >= 2 and "embeddings" not in n]
    no_decay = [p for n, p in student.named_parameters() if not (p.ndim >= 2 and "embeddings" not in n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=config.learning_rate)
    warmup = max(1, int(config.warmup_fraction * config.steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _schedule(s, config.steps, warmup))
    start, losses = 0, []
    best = _BestWindow(config.checkpoint_every or 100)
    checkpoint = Path(checkpoint_dir) / "checkpoint.pt" if checkpoint_dir and config.checkpoint_every else None
    if checkpoint is not None:
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
    if checkpoint is not None and checkpoint.is_file():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        student.load_state_dict(state["student"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start, losses = state["step"], state["losses"]
    began, tokens, seen = time.perf_counter(), 0, 0
    progress, task = _progress_bar(config.progress, config.steps, start)
    with progress:
        end = config.steps if stop_at is None else min(stop_at, config.steps)
        for step in range(start, end):
            batch = batches[step]
            width = int(lengths[batch].max())
            input_ids = torch.as_tensor(ids[batch, :width], device=device)
            mask = (torch.arange(width, device=device)[None, :]
                    < torch.as_tensor(lengths[batch], device=device)[:, None]).long()
            if use_words:
                states = student.states(input_ids, mask)
                output = student.project(pool(states, mask, student.pooling))
                loss = (1.0 - torch.nn.functional.cosine_similarity(output, target[batch], dim=1)).mean()
                predicted, wanted = _word_pairs(student, states, word_ids[batch, :width], words, batch)
                loss = loss + config.word_weight * (
                    1.0 - torch.nn.functional.cosine_similarity(predicted, wanted, dim=1)).mean()
            else:
                output = student(input_ids, mask)
                loss = (1.0 - torch.nn.functional.cosine_similarity(output, target[batch], dim=1)).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(student.parameters(), config.clip_norm)
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
            best.offer(losses, student)
            tokens += int(lengths[batch].sum())
            seen += len(batch)
            elapsed = time.perf_counter() - began
            progress.update(task, advance=1, loss=float(np.mean(losses[-20:])), rate=seen / max(elapsed, 1e-9))
            if checkpoint is not None and step + 1 < config.steps and (
                    (step + 1) % config.checkpoint_every == 0 or step + 1 == end):
                tmp = checkpoint.with_suffix(".tmp")
                torch.save({"step": step + 1, "student": student.state_dict(), "optimizer": optimizer.state_dict(),
                            "scheduler": scheduler.state_dict(), "losses": losses}, tmp)
                tmp.replace(checkpoint)
    seconds = time.perf_counter() - began
    restored = best.restore_if_better(losses, student) if end == config.steps else False
    student.to("cpu").eval()
    if checkpoint is not None and checkpoint.is_file() and end == config.steps:
        checkpoint.unlink()  # the finished student is what counts; a stale checkpoint would resume a done run
    return TrainingResult(steps=end, seconds=seconds, snippets_per_s=seen / max(seconds, 1e-9),
                          tokens_per_s=tokens / max(seconds, 1e-9), final_loss=float(np.mean(losses[-20:])),
                          losses=losses, restored_step=best.step if restored else None)


def length_batches(lengths: np.ndarray, batch_size: int, steps: int, window: int,
                   rng: np.random.Generator) -> list[np.ndarray]:
    """`steps` batches of row indices: each epoch a fresh permutation, cut into windows of `window` batches,
    each window sorted by length and cut into batches, the epoch's batches then shuffled. Rows of a batch have
    similar lengths, so less of each step is padding (random batches of the default corpus were 38% padding);
    `window` 1 is plain random batches. A function of the seed, so a resumed run sees the same batches."""
    batches: list[np.ndarray] = []
    while len(batches) < steps:
        order = rng.permutation(len(lengths))
        epoch = []
        span = max(1, window) * batch_size
        for start in range(0, len(order), span):
            chunk = order[start:start + span]
            if window > 1:
                chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
            epoch += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
        batches += [epoch[i] for i in (rng.permutation(len(epoch)) if window > 1 else range(len(epoch)))]
    return batches[:steps]


class _BestWindow:
    """The weights at the end of the training window with the lowest mean loss, kept in memory.

    A deep post-LayerNorm student can diverge late at a learning rate that a one-layer student needs (measured: a
    6-layer student ended at 0.41 held-out cosine after 6,000 steps, having passed 0.70 at 200). With a cosine
    decay the last window is normally the best, so restoring changes nothing for a healthy run.
    """

    def __init__(self, window: int):
        self.window, self.loss, self.step, self.state = window, float("inf"), None, None

    def offer(self, losses: list[float], student) -> None:
        if len(losses) % self.window:
            return
        mean = float(np.mean(losses[-self.window:]))
        if mean < self.loss:
            self.loss, self.step = mean, len(losses)
            self.state = {k: v.detach().clone() for k, v in student.state_dict().items()}

    def restore_if_better(self, losses: list[float], student) -> bool:
        final = float(np.mean(losses[-self.window:])) if losses else float("inf")
        if self.state is None or self.step == len(losses) or final <= self.loss + 0.01:
            return False
        student.load_state_dict(self.state)
        return True


def _word_pairs(student, states, word_ids: np.ndarray, words: WordTargets, batch: np.ndarray):
    """(student word vectors, teacher word vectors), one row per word both models saw, for a batch.

    Student states are averaged per word id (the tokenizers share words, not tokens) and projected to the
    teacher's width; words past the teacher's truncation are dropped.
    """
    import torch

    device = states.device
    counts = words.counts()[batch]
    width = max(1, int(counts.max()))
    rows = np.arange(len(batch))[:, None]
    valid = (word_ids >= 0) & (word_ids < counts[:, None])
    slots = (rows * width + word_ids)[valid]
    slot_t = torch.as_tensor(slots, device=device)
    chosen = states[torch.as_tensor(valid, device=device)]
    sums = torch.zeros(len(batch) * width, states.shape[-1], dtype=states.dtype, device=device)
    sums = sums.index_add(0, slot_t, chosen)
    tokens = torch.zeros(len(batch) * width, dtype=states.dtype, device=device)
    tokens = tokens.index_add(0, slot_t, torch.ones(len(slots), dtype=states.dtype, device=device))
    present = np.unique(slots)
    present_t = torch.as_tensor(present, device=device)
    predicted = student.project(sums[present_t] / tokens[present_t, None])
    teacher_rows = words.offsets[batch][present // width] + present % width
    wanted = torch.as_tensor(words.states[teacher_rows], dtype=torch.float32, device=device)
    return predicted, wanted


# How a student starts: embeddings from the teacher's input embeddings (default), also its layers (weight
# selection), from the teacher's output for each token alone (static.token_states: a static student's start), or
# noise.
INITS = ("teacher", "teacher_layers", "token_states", "random")


@dataclass
class DistillationData:
    """What every candidate trains and is scored on: teacher, corpus, vocabulary plan and the teacher's targets."""

    teacher: Teacher
    corpus: Corpus
    plan: VocabularyPlan
    train_targets: np.ndarray
    held_out_targets: np.ndarray
    max_length: int  # teacher tokens per snippet
    train_words: WordTargets | None = None  # the teacher's word states of the training snippets, when asked for
    train_tokens: TokenStates | None = None  # its token states averaged per token over them (static students' start)
    _embedded: dict = field(default_factory=dict, repr=False)

    def teacher_embed(self, texts: Sequence[str]) -> np.ndarray:
        """The teacher's embeddings of `texts`, computed once per list of texts: every student of a run is scored
        on the same held-out halves (fidelity.top1_agreement), and the teacher's pass is the costly part."""
        key = tuple(texts)
        if key not in self._embedded:
            self._embedded[key] = self.teacher.embed(key, self.max_length)
        return self._embedded[key]


def prepare_data(teacher: str | Teacher, data: str | None, corpus_config: CorpusConfig, max_length: int,
                 seed: int = 0, cache_dir: Path | None = None, corpus: Corpus | None = None,
                 words: bool = False, teacher_precision: str = "auto") -> DistillationData:
    """Load the teacher and the corpus, plan the vocabulary, and compute (or read cached) teacher targets
    (with `words`, also the teacher's word states of the training snippets, for the word-level loss).
    `teacher_precision` (`Teacher.with_precision`) is the training targets' only: the held-out targets, which
    fidelity is measured against, always come from the float32 teacher."""
    teacher = load_teacher(teacher) if isinstance(teacher, str) else teacher
    corpus = corpus or load_corpus(data, corpus_config, seed)
    plan = plan_vocabulary(teacher.tokenizer, corpus.train)
    cache_dir = cache_dir or default_cache_dir()
    if device_for_training() == "cuda":
        teacher.model.to("cuda")  # targets on the GPU; the teacher goes back to the CPU for latency figures
    trainer = teacher.with_precision(teacher_precision) if device_for_training() == "cpu" else teacher
    try:
        train_targets, train_words, train_tokens = cached_targets(trainer, corpus.train, max_length, cache_dir,
                                                                  words=words, tokens=True)
        held_out_targets = cached_embeddings(teacher, corpus.held_out, max_length, cache_dir)
    finally:
        teacher.model.to("cpu")
    return DistillationData(teacher, corpus, plan, train_targets, held_out_targets, max_length, train_words,
                            train_tokens)


def train_student(shape: Shape, data: DistillationData, config: TrainingConfig, init: str = "teacher",
                  train: bool = True, checkpoint_dir: Path | None = None):
    """(student, tokenizer, TrainingResult | None): a student of `shape`, initialised and distilled. A static
    shape (zero layers) starts from the teacher's per-token outputs (static.py; `init` "random" keeps the table
    random) and trains at `static_lr_scale` x the learning rate."""
    from spaces.architecture.student import build_student, initialise_from_teacher

    if init not in INITS:
        raise UserError(f"init: {init!r} is not known; choose one of {', '.join(INITS)}")
    vocabulary = reduce_vocabulary(data.teacher.tokenizer, data.plan, shape.vocab)
    if shape.static:
        return _train_static(shape, data, config, init, train, checkpoint_dir, vocabulary)
    tokenizer = student_tokenizer(data.teacher.tokenizer, vocabulary, shape.positions)
    student = build_student(shape, data.teacher.config, data.teacher.embedding_dim, config.seed,
                            data.teacher.pooling)
    if init != "random":
        from spaces.architecture.static import token_states

        states = token_states(data.teacher, vocabulary) if init == "token_states" else None
        initialise_from_teacher(student, data.teacher.model, vocabulary, data.train_targets.mean(0),
                                layers=init == "teacher_layers", token_states=states)
    result = None
    if train:
        config = _fit_length(config, shape)
        result = distill(student, tokenizer, data.corpus.train, data.train_targets, config, checkpoint_dir,
                         words=data.train_words)
    return student, tokenizer, result


def _train_static(shape: Shape, data: DistillationData, config: TrainingConfig, init: str, train: bool,
                  checkpoint_dir: Path | None, vocabulary):
    from dataclasses import replace

    import torch

    from spaces.architecture.static import StaticStudent, build_static

    tokenizer = student_tokenizer(data.teacher.tokenizer, vocabulary, config.max_length)
    if init == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            student = StaticStudent(shape.vocab, shape.hidden, data.teacher.embedding_dim)
    else:
        student = build_static(shape, data.teacher, vocabulary, data.train_tokens)
    result = None
    if train:
        config = replace(config, learning_rate=config.learning_rate * config.static_lr_scale, word_weight=0.0)
        result = distill(student, tokenizer, data.corpus.train, data.train_targets, config, checkpoint_dir)
    student.eval()
    return student, tokenizer, result


def _fit_length(config: TrainingConfig, shape: Shape) -> TrainingConfig:
    """Cap the length at the student's positions, and scale the learning rate (set for one layer) by
    1/sqrt(layers): deep post-LayerNorm students diverge at the one-layer rate (see `_BestWindow`)."""
    from dataclasses import replace

    return replace(config, max_length=min(config.max_length, shape.positions),
                   learning_rate=config.learning_rate / math.sqrt(shape.layers))


class Distillation(Objective):
    """Held-out mean cosine similarity to the teacher after a short, fixed-budget distillation (maximise).

    Heavy state (teacher, corpus, targets) is loaded on first use in each process and not pickled, so the objective
    ships to Ray workers cheaply; targets come from the on-disk cache that the driver filled (see `prepare`).
    """

    @dataclass(frozen=True)
    class Config:
        data: str = ""                 # folder of unlabelled text; "" = the standard library's Python source
        steps: int = 150               # optimizer steps per candidate
        batch_size: int = 32           # snippets per step
        learning_rate: float = 2e-3
        max_length: int = 96           # teacher tokens per snippet (the targets)
        student_max_length: int = 128  # student tokens per snippet
        train_snippets: int = 4000     # training snippets drawn from the corpus
        held_out_snippets: int = 300   # held-out snippets scored
        train_chunk_chars: int = 0     # characters per training snippet (0 = the held-out snippets' length)
        teacher_precision: str = "auto"  # of the training targets (teacher.TEACHER_PRECISIONS; "auto": bfloat16
                                         # where the CPU has it natively, else float32)
        init: str = "teacher"          # one of INITS: "teacher" (embeddings from the teacher), "random", ...
        threads: int = 1               # torch CPU threads per evaluation; 0 = torch's default
        cache_dir: str = ""            # where teacher targets are cached; "" = ~/.cache/evoforge

    names = ("fidelity",)
    directions = ("max",)

    def __init__(self, config: Distillation.Config, space, context):
        super().__init__(config, space, context)
        if config.steps < 1 or config.batch_size < 1 or config.train_snippets < 1 or config.held_out_snippets < 2:
            raise UserError("steps, batch_size, train_snippets, held_out_snippets: must be positive "
                            "(held_out_snippets >= 2)")
        if config.init not in INITS:
            raise UserError(f"init: {config.init!r} is not known; choose one of {', '.join(INITS)}")
        self._data: DistillationData | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_data"] = None
        return state

    def prepare(self, teacher: Teacher | None = None, corpus: Corpus | None = None) -> DistillationData:
        """Load (once per process) the teacher, corpus and targets; pass already-loaded ones to share them."""
        if self._data is None:
            c = self.config
            cache = Path(c.cache_dir) if c.cache_dir else default_cache_dir()
            self._data = prepare_data(teacher or self.space.config.teacher, c.data or None, self.corpus_config(),
                                      c.max_length, self.context.seed, cache, corpus,
                                      teacher_precision=c.teacher_precision)
        return self._data

    def corpus_config(self) -> CorpusConfig:
        """The corpus every process cuts: a Ray worker must draw the driver's snippets, or it trains on other text
        and recomputes the teacher's targets instead of reading the driver's from the cache."""
        c = self.config
        return CorpusConfig(max_train=c.train_snippets, max_held_out=c.held_out_snippets,
                            train_chunk_chars=c.train_chunk_chars)

    def training_config(self) -> TrainingConfig:
        c = self.config
        return TrainingConfig(steps=c.steps, batch_size=c.batch_size, learning_rate=c.learning_rate,
                              max_length=c.student_max_length, threads=c.threads, seed=self.context.seed)

    def evaluate(self, genome: Shape) -> Evaluation:
        import torch

        from spaces.architecture.student import embed

        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        data = self.prepare()
        student, tokenizer, result = train_student(genome, data, self.training_config(), self.config.init)
        if genome.int8 and not genome.static:   # score what the int8 file will hold (static tables: static.py)
            from spaces.architecture.int8 import fake_quantise_

            fake_quantise_(student)
        length = min(self.config.student_max_length, genome.positions)
        held_out = embed(student, tokenizer, data.corpus.held_out, length)
        cosine = mean_cosine(held_out, data.held_out_targets)
        return Evaluation(values=(cosine,), extras={"mean_cosine": cosine, "train_seconds": result.seconds,
                                                    "final_loss": result.final_loss})
