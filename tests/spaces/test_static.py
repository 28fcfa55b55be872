"""Static students' distillation (spaces/architecture/static.py): the loss falls, the anchor holds rows near
their start, and a seed fixes the result."""

import numpy as np
import pytest
import torch

from objectives.distillation import prepare_data
from spaces.architecture.corpus import CorpusConfig
from spaces.architecture.shapes import Shape
from spaces.architecture.static import StaticTraining, build_static, distill_static
from spaces.architecture.vocabulary import reduce_vocabulary, student_tokenizer

SHAPE = Shape(0, 32, 1, 0, 400, 0, True)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    import inspect

    import spaces.architecture.corpus as a
    import spaces.architecture.static as b
    import spaces.architecture.teacher as c

    root = tmp_path_factory.mktemp("texts")
    for i, module in enumerate((a, b, c)):
        (root / f"m{i}.py").write_text(inspect.getsource(module))
    return prepare_data("", str(root), CorpusConfig(max_train=48, max_held_out=16, held_out_percent=20), 48,
                        cache_dir=tmp_path_factory.mktemp("cache"))


def _trained(data, **changes):
    vocabulary = reduce_vocabulary(data.teacher.tokenizer, data.plan, SHAPE.vocab)
    tokenizer = student_tokenizer(data.teacher.tokenizer, vocabulary, 48)
    student = build_static(SHAPE, data.teacher, vocabulary, data.train_tokens)
    start = student.embeddings.weight.detach().clone()
    config = StaticTraining(**{"steps": 40, "batch_size": 8, "max_length": 48, **changes})
    distill_static(student, tokenizer, data.corpus.train, data.train_targets, config)
    return student, start, tokenizer


def _train_cosine(student, tokenizer, data):
    from spaces.architecture.fidelity import mean_cosine

    enc = tokenizer(list(data.corpus.train), truncation=True, max_length=48, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = student(enc["input_ids"], enc["attention_mask"]).numpy()
    return mean_cosine(out, data.train_targets)


def test_distillation_fits_the_targets_and_the_anchor_holds_rows_near_their_start(data):
    vocabulary = reduce_vocabulary(data.teacher.tokenizer, data.plan, SHAPE.vocab)
    untrained = build_static(SHAPE, data.teacher, vocabulary, data.train_tokens)
    tokenizer = student_tokenizer(data.teacher.tokenizer, vocabulary, 48)
    free, start, _ = _trained(data, anchor=0.0)
    held, _, _ = _trained(data, anchor=1.0)
    assert _train_cosine(free, tokenizer, data) > _train_cosine(untrained, tokenizer, data) + 0.02
    moved = lambda s: float((s.embeddings.weight.detach() - start).square().sum())  # noqa: E731
    assert 0 < moved(held) < 0.5 * moved(free)


def test_a_seed_fixes_the_student(data):
    a, _, _ = _trained(data, seed=3, steps=10)
    b, _, _ = _trained(data, seed=3, steps=10)
    c, _, _ = _trained(data, seed=4, steps=10)
    assert torch.equal(a.embeddings.weight, b.embeddings.weight)
    assert not torch.equal(a.embeddings.weight, c.embeddings.weight)
    assert np.isfinite(a.projection.weight.detach().numpy()).all()
