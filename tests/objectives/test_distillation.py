"""Distillation on a micro student: the schedule, learning, exact resume from a checkpoint, and the objective."""

import inspect
import pickle

import numpy as np
import pytest
import torch

from objectives.distillation import Distillation, TrainingConfig, _schedule, distill, prepare_data, train_student
from search.protocols import Context, UserError
from spaces.architecture.corpus import CorpusConfig
from spaces.architecture.shapes import Shape, TransformerShapeSpace

MICRO = Shape(2, 32, 2, 64, 400, 64)


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory):
    """A small corpus: docstrings of this repository's own library modules (real text, a few files)."""
    import json

    import spaces.architecture.shapes as a
    import spaces.architecture.student as b
    import spaces.architecture.teacher as c

    root = tmp_path_factory.mktemp("texts")
    for i, module in enumerate((a, b, c, json, inspect)):
        (root / f"m{i}.py").write_text(inspect.getsource(module)[:6000])
    return root


@pytest.fixture(scope="module")
def data(text_dir, tmp_path_factory):
    return prepare_data("", str(text_dir), CorpusConfig(max_train=48, max_held_out=16, held_out_percent=20), 48,
                        cache_dir=tmp_path_factory.mktemp("cache"))


def test_schedule_warms_up_then_decays_to_zero():
    values = [_schedule(s, 100, 10) for s in range(100)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(values[10:], values[11:]))
    assert values[-1] < 0.01


def test_distillation_lowers_the_loss(data):
    config = TrainingConfig(steps=40, batch_size=8, learning_rate=3e-3, max_length=48)
    _, _, result = train_student(MICRO, data, config)
    assert result.steps == 40 and result.snippets_per_s > 0
    assert np.mean(result.losses[-8:]) < np.mean(result.losses[:8]) - 0.05


def test_resume_from_checkpoint_is_exact(data, tmp_path):
    config = TrainingConfig(steps=8, batch_size=4, max_length=48, checkpoint_every=3)
    whole, tokenizer, _ = train_student(MICRO, data, config, train=False)
    distill(whole, tokenizer, data.corpus.train, data.train_targets, config)
    split, _, _ = train_student(MICRO, data, config, train=False)
    first = distill(split, tokenizer, data.corpus.train, data.train_targets, config, tmp_path / "ck", stop_at=5)
    assert first.steps == 5 and (tmp_path / "ck" / "checkpoint.pt").is_file()
    fresh, _, _ = train_student(MICRO, data, config, train=False)
    distill(fresh, tokenizer, data.corpus.train, data.train_targets, config, tmp_path / "ck")
    assert not (tmp_path / "ck" / "checkpoint.pt").exists()
    for a, b in zip(whole.state_dict().values(), fresh.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_teacher_init_beats_random_init_before_training(data):
    from spaces.architecture.fidelity import mean_cosine
    from spaces.architecture.student import embed

    scores = {}
    for init in ("teacher", "random"):
        student, tokenizer, _ = train_student(MICRO, data, TrainingConfig(), init=init, train=False)
        scores[init] = mean_cosine(embed(student, tokenizer, data.corpus.held_out, 48), data.held_out_targets)
    assert scores["teacher"] > scores["random"] + 0.1


def test_objective_is_deterministic_and_pickles_light(data, text_dir):
    space = TransformerShapeSpace(TransformerShapeSpace.Config(seq_length=64, min_vocab=300), Context())
    objective = Distillation(Distillation.Config(data=str(text_dir), steps=6, batch_size=4, max_length=48,
                                                 train_snippets=48, held_out_snippets=16), space, Context())
    objective._data = data
    first, second = objective.evaluate(MICRO), objective.evaluate(MICRO)
    assert -1.0 <= first.values[0] <= 1.0
    assert first.values == second.values
    assert len(pickle.dumps(objective)) < 20_000  # teacher and targets are not shipped to workers


def test_teacher_and_student_tokenizers_share_words(data, tmp_path):
    """Word-level targets rest on this: a reduced vocabulary splits text into the same words as the teacher's."""
    from spaces.architecture.teacher import cached_targets
    from spaces.architecture.vocabulary import reduce_vocabulary, student_tokenizer

    texts = list(data.corpus.train[:16])
    pooled, words, _ = cached_targets(data.teacher, texts, 512, tmp_path, words=True)
    again, cached, _ = cached_targets(data.teacher, texts, 512, tmp_path, words=True)  # read back from the cache
    assert np.array_equal(pooled, again) and np.array_equal(words.states, cached.states)
    assert words.states.shape == (words.offsets[-1], data.teacher.embedding_dim)
    tokenizer = student_tokenizer(data.teacher.tokenizer, reduce_vocabulary(data.teacher.tokenizer, data.plan,
                                                                            data.plan.floor), 512)
    encoded = tokenizer(texts)
    student_words = [1 + max(w for w in encoded.word_ids(i) if w is not None) for i in range(len(texts))]
    assert student_words == list(words.counts())
    # The words' mean, weighted by their token counts, is the pooled embedding minus the specials' share.
    assert np.all(np.isfinite(words.states.astype(np.float32)))


def test_word_level_loss_trains_and_needs_word_targets(text_dir, tmp_path_factory, data):
    worded = prepare_data("", str(text_dir), CorpusConfig(max_train=48, max_held_out=16, held_out_percent=20), 48,
                          cache_dir=tmp_path_factory.mktemp("cache"), words=True)
    config = TrainingConfig(steps=30, batch_size=8, learning_rate=3e-3, max_length=48, word_weight=1.0)
    _, _, result = train_student(MICRO, worded, config)
    assert np.mean(result.losses[-8:]) < np.mean(result.losses[:8]) - 0.05
    with pytest.raises(ValueError, match="word states"):
        train_student(MICRO, data, config)  # `data` was prepared without word targets


def test_layer_inheritance_beats_embeddings_only_before_training(data):
    """Weight selection: a one-layer student cut from the teacher's first layer starts closer to the teacher."""
    from spaces.architecture.fidelity import mean_cosine
    from spaces.architecture.student import embed

    shape = Shape(1, 64, 2, 256, 400, 64)  # head size 32, the teacher's
    scores = {}
    for init in ("teacher", "teacher_layers"):
        student, tokenizer, _ = train_student(shape, data, TrainingConfig(), init=init, train=False)
        scores[init] = mean_cosine(embed(student, tokenizer, data.corpus.held_out, 48), data.held_out_targets)
    assert scores["teacher_layers"] > scores["teacher"]


def test_vocabulary_narrower_than_the_student_still_initialises(data):
    """Fewer kept tokens than student features: the PCA basis is completed, not truncated (a candidate failed)."""
    shape = Shape(1, 384, 12, 128, data.plan.floor, 64)
    assert data.plan.floor < 384
    student, _, _ = train_student(shape, data, TrainingConfig(), train=False)
    assert torch.isfinite(student.encoder.embeddings.word_embeddings.weight).all()


def test_diverged_training_restores_the_best_window():
    from objectives.distillation import _BestWindow

    def train(curve):
        model, best, losses, snapshots = torch.nn.Linear(2, 2), _BestWindow(3), [], {}
        for loss in curve:
            losses.append(loss)
            best.offer(losses, model)
            snapshots[len(losses)] = model.weight.detach().clone()
            with torch.no_grad():
                model.weight.add_(1.0)  # every step moves the weights
        return model, best, losses, snapshots

    model, best, losses, snapshots = train([0.9, 0.8, 0.7, 0.3, 0.3, 0.3, 0.9, 0.9, 0.9])
    assert best.restore_if_better(losses, model) and best.step == 6
    assert torch.equal(model.weight, snapshots[6])
    model, best, losses, snapshots = train([0.9, 0.8, 0.7, 0.5, 0.4, 0.3])  # healthy: the last window is best
    assert not best.restore_if_better(losses, model)


STATIC = Shape(0, 32, 1, 0, 400, 0, True)


def test_static_student_starts_from_the_teachers_token_outputs(data):
    """Width = the teacher's: no projection, and each row + bias is exactly the teacher's output for that token."""
    from spaces.architecture.static import build_static, token_states
    from spaces.architecture.vocabulary import reduce_vocabulary

    vocabulary = reduce_vocabulary(data.teacher.tokenizer, data.plan, 400)
    states = token_states(data.teacher, vocabulary)
    student = build_static(Shape(0, 384, 1, 0, 400, 0), data.teacher, vocabulary)
    assert student.projection is None
    rows = (student.embeddings.weight + student.bias).detach().double().numpy()
    np.testing.assert_allclose(rows, states, atol=1e-5)
    # 32 principal columns of 384 keep about half the spread; 32 random directions would keep about 32/384.
    narrow = build_static(STATIC, data.teacher, vocabulary)
    rebuilt = narrow.projection(narrow.embeddings.weight).detach().double().numpy()
    centred = states - states.mean(0)
    residual = np.linalg.norm(rebuilt - states) / np.linalg.norm(centred)
    basis = np.linalg.qr(np.random.default_rng(0).normal(size=(384, 32)))[0]
    random_residual = np.linalg.norm(centred - centred @ basis @ basis.T) / np.linalg.norm(centred)
    assert residual < 0.75 < 0.9 < random_residual


def test_static_student_starts_from_the_teachers_states_in_context(data):
    """With the corpus's token states, a row is the teacher's mean state of that token in context; tokens the
    corpus never showed the teacher fall back to the token run alone."""
    from spaces.architecture.static import build_static, token_states
    from spaces.architecture.vocabulary import reduce_vocabulary

    vocabulary = reduce_vocabulary(data.teacher.tokenizer, data.plan, 400)
    means, found = data.train_tokens.lookup(vocabulary.teacher_ids)
    assert 0 < found.sum() < len(found)  # single characters the training snippets never use are kept too
    student = build_static(Shape(0, 384, 1, 0, 400, 0), data.teacher, vocabulary, data.train_tokens)
    rows = (student.embeddings.weight + student.bias).detach().double().numpy()
    np.testing.assert_allclose(rows[found], means[found], atol=1e-5)
    np.testing.assert_allclose(rows[~found], token_states(data.teacher, vocabulary)[~found], atol=1e-5)


def test_static_student_trains_saves_int8_and_loads_back(data, tmp_path):
    from objectives.model_size import student_size
    from spaces.architecture.fidelity import mean_cosine
    from spaces.architecture.static import StaticEncoder, save_static
    from spaces.architecture.student import embed

    config = TrainingConfig(steps=60, batch_size=8, learning_rate=2e-3, max_length=48)
    untrained, tokenizer, _ = train_student(STATIC, data, config, train=False)
    student, tokenizer, result = train_student(STATIC, data, config)
    assert np.mean(result.losses[-10:]) < np.mean(result.losses[:10]) - 0.05
    save_static(student, tokenizer, tmp_path, STATIC, "float16")
    size = (tmp_path / "model.safetensors").stat().st_size
    bound = student_size(STATIC, 384, "float16").file_bytes_bound
    assert bound - 120 <= size <= bound  # the size objective is the file's bytes, up to header digits
    assert size < 400 * 32 + 400 * 2 + 384 * 33 * 2 + 400  # int8 table: one byte per weight
    encoder = StaticEncoder(tmp_path)
    texts = list(data.corpus.train)
    saved = encoder.encode(texts, 48)
    in_memory = embed(student, tokenizer, texts, 48)
    assert mean_cosine(saved, in_memory) > 0.999  # int8 rows and float16 projection change almost nothing
    before = mean_cosine(embed(untrained, tokenizer, texts, 48), data.train_targets)
    assert mean_cosine(saved, data.train_targets) > before + 0.02


def test_token_states_average_to_the_mean_pooled_embedding(data, tmp_path):
    """Per-token means of the teacher's states, weighted by their counts, give back a text's mean-pooled
    embedding (every token, [CLS] and [SEP] included, is in both); the cache returns the same arrays."""
    from spaces.architecture.teacher import cached_targets

    text = [data.corpus.train[0]]
    pooled, _, tokens = cached_targets(data.teacher, text, 512, tmp_path, tokens=True)
    assert tokens.counts.sum() == len(data.teacher.tokenizer(text[0])["input_ids"])
    rebuilt = (tokens.means * tokens.counts[:, None]).sum(0) / tokens.counts.sum()
    assert np.allclose(rebuilt, pooled[0], atol=1e-5)
    _, _, again = cached_targets(data.teacher, text, 512, tmp_path, tokens=True)
    assert np.array_equal(again.means, tokens.means) and np.array_equal(again.ids, tokens.ids)
    means, found = tokens.lookup(np.array([tokens.ids[1], 999_999]))
    assert found.tolist() == [True, False] and np.array_equal(means[0], tokens.means[1]) and not means[1].any()


def test_int8_teacher_targets_stay_close_and_have_their_own_cache_key(data, tmp_path):
    from spaces.architecture.fidelity import mean_cosine
    from spaces.architecture.teacher import cached_targets

    texts = list(data.corpus.held_out)
    quantised = data.teacher.with_precision("int8")
    assert quantised.precision == "int8" and data.teacher.with_precision("float32") is data.teacher
    int8 = cached_targets(quantised, texts, 48, tmp_path)[0]
    float32 = cached_targets(data.teacher, texts, 48, tmp_path)[0]
    assert len(list(tmp_path.glob("teacher-*.npy"))) == 2
    assert 0.95 < mean_cosine(int8, float32) < 0.999  # per-channel int8: close, not equal
    with pytest.raises(UserError, match="teacher_precision"):
        data.teacher.with_precision("int4")


def test_bfloat16_teacher_targets_agree_to_four_nines_and_auto_picks_by_measurement(data, tmp_path):
    """bfloat16 targets: mean cosine > 0.9999 to float32's (states pooled in float32), their own cache file;
    "auto" is bfloat16 exactly where this CPU multiplies bfloat16 1.5x faster than float32 (timed)."""
    from spaces.architecture.fidelity import mean_cosine
    from spaces.architecture.teacher import cached_targets, native_bfloat16

    texts = list(data.corpus.held_out)
    half = data.teacher.with_precision("bfloat16")
    assert half.precision == "bfloat16" and next(half.model.parameters()).dtype.is_floating_point
    bf16, words, _ = cached_targets(half, texts, 48, tmp_path, words=True)
    float32, words32, _ = cached_targets(data.teacher, texts, 48, tmp_path, words=True)
    assert bf16.dtype == np.float32 and len(list(tmp_path.glob("teacher-*.npy"))) == 2
    assert 0.9999 < mean_cosine(bf16, float32) < 1.0
    assert np.array_equal(words.offsets, words32.offsets) and np.all(np.isfinite(words.states))
    assert data.teacher.with_precision("auto").precision == ("bfloat16" if native_bfloat16() else "float32")
    assert next(data.teacher.model.parameters()).dtype == torch.float32       # the copy, not the teacher itself


def test_length_batches_cut_padding_and_cover_every_row_each_epoch():
    from objectives.distillation import length_batches

    lengths = np.random.default_rng(1).integers(10, 130, size=640)
    sorted_ = length_batches(lengths, 32, 40, 8, np.random.default_rng(0))
    plain = length_batches(lengths, 32, 40, 1, np.random.default_rng(0))
    assert len(sorted_) == len(plain) == 40 and all(len(b) == 32 for b in sorted_)
    assert sorted(np.concatenate(sorted_[:20]).tolist()) == list(range(640))  # an epoch is a permutation

    def padding(batches):
        return 1 - sum(lengths[b].sum() for b in batches) / sum(lengths[b].max() * len(b) for b in batches)

    assert padding(plain) > 0.4 and padding(sorted_) < 0.15
    again = length_batches(lengths, 32, 40, 8, np.random.default_rng(0))
    assert all((a == b).all() for a, b in zip(sorted_, again))  # a function of the seed: resume is exact


def test_teacher_embeddings_of_the_same_texts_are_computed_once(data):
    from dataclasses import replace

    calls = []

    class CountingTeacher:
        def embed(self, texts, max_length):
            calls.append(len(texts))
            return np.ones((len(texts), 3), np.float32)

    counted = replace(data, teacher=CountingTeacher(), _embedded={})
    first = counted.teacher_embed(["a b", "c d"])
    second = counted.teacher_embed(("a b", "c d"))
    assert calls == [2] and second is first
    counted.teacher_embed(["e f"])
    assert calls == [2, 1]


@pytest.mark.parametrize("width", [32, 384])
def test_token_state_init_starts_from_the_teachers_output_per_token(data, width):
    shape = Shape(1, width, 2, 64, 400, 64)
    student, _, _ = train_student(shape, data, TrainingConfig(max_length=48), init="token_states", train=False)
    embeddings = student.encoder.embeddings
    assert float(embeddings.position_embeddings.weight.detach().abs().max()) == 0.0
    if width == 384:  # the teacher's width: no projection, the rows are the centred token outputs themselves
        assert student.projection is None
    else:
        np.testing.assert_allclose(student.projection.bias.detach().numpy(), data.train_targets.mean(0), atol=1e-6)
        basis = student.projection.weight.detach().double()
        gram = basis.T @ basis
        assert torch.allclose(gram / gram[0, 0], torch.eye(width, dtype=torch.float64), atol=1e-5)
