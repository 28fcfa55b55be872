"""Distillation on a micro student: the schedule, learning, exact resume from a checkpoint, and the objective."""

import inspect
import pickle

import numpy as np
import pytest
import torch

from objectives.distillation import Distillation, TrainingConfig, _schedule, distill, prepare_data, train_student
from search.protocols import Context
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
