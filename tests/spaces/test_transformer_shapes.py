"""The transformer-shape space: ranges from the teacher's config, valid genomes under mutation and crossover."""

import json
from dataclasses import astuple

import numpy as np
import pytest

from search.protocols import Context, UserError
from spaces.architecture.shapes import GENES, Shape, TransformerShapeSpace, default_vocab_floor


@pytest.fixture(scope="module")
def space():
    return TransformerShapeSpace(TransformerShapeSpace.Config(seq_length=64), Context(seed=0))


def test_bounds_come_from_the_teacher_config(space):
    config = json.loads((space.teacher_path / "config.json").read_text())
    b = space.bounds
    assert (b.max_layers, b.max_hidden, b.max_heads, b.max_intermediate, b.max_vocab, b.max_positions) == (
        config["num_hidden_layers"], config["hidden_size"], config["num_attention_heads"],
        config["intermediate_size"], config["vocab_size"], config["max_position_embeddings"])
    assert (b.max_layers, b.max_hidden, b.max_heads) == (6, 384, 12)  # all-MiniLM-L6-v2
    assert b.min_positions == 64


def test_vocab_floor_counts_specials_and_single_characters(space):
    tokens = (space.teacher_path / "vocab.txt").read_text(encoding="utf-8").splitlines()
    singles = sum(1 for t in tokens if len(t) == 1 or (t.startswith("##") and len(t) == 3))
    assert default_vocab_floor(space.teacher_path) == singles + 5
    assert space.bounds.min_vocab == singles + 5


def test_local_teacher_directory_is_read(tmp_path):
    config = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128,
              "vocab_size": 500, "max_position_embeddings": 128}
    (tmp_path / "config.json").write_text(json.dumps(config))
    space = TransformerShapeSpace(TransformerShapeSpace.Config(teacher=str(tmp_path), seq_length=32,
                                                               min_vocab=100), Context())
    assert (space.bounds.max_hidden, space.bounds.max_layers, space.bounds.min_vocab) == (64, 2, 100)
    shape = space.random(np.random.default_rng(0))
    assert space.bounds.contains(shape)


def test_bad_teacher_and_lengths_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="teacher"):
        TransformerShapeSpace(TransformerShapeSpace.Config(teacher=str(tmp_path / "missing")), Context())
    with pytest.raises(UserError, match="config.json"):
        TransformerShapeSpace(TransformerShapeSpace.Config(teacher=str(tmp_path)), Context())
    with pytest.raises(UserError, match="seq_length"):
        TransformerShapeSpace(TransformerShapeSpace.Config(seq_length=4096), Context())


def test_operators_keep_genomes_valid_and_heads_dividing_hidden(space):
    rng = np.random.default_rng(1)
    population = [space.random(rng) for _ in range(50)]
    for _ in range(400):
        a, b = population[rng.integers(50)], population[rng.integers(50)]
        c, d = space.crossover(a, b, rng)
        m = space.mutate(c, rng)
        for shape in (c, d, m):
            assert space.bounds.contains(shape), shape
            assert shape.hidden % shape.heads == 0
        population[rng.integers(50)] = m


def test_mutation_changes_one_gene_and_crossover_mixes_parents(space):
    rng = np.random.default_rng(2)
    shape = Shape(3, 128, 4, 512, 4000, 128)
    changed = [sum(x != y for x, y in zip(astuple(shape), astuple(space.mutate(shape, rng)))) for _ in range(200)]
    assert max(changed) <= 2  # one gene, plus heads repaired after a hidden change
    assert np.mean([c > 0 for c in changed]) > 0.6
    other = Shape(1, 64, 2, 128, 2500, 256)
    for child in space.crossover(shape, other, rng):
        for gene, x in zip(GENES, astuple(child)):
            assert x in (getattr(shape, gene), getattr(other, gene)) or gene == "heads"


def test_same_seed_same_genomes_and_key_is_canonical(space):
    a = [space.random(np.random.default_rng(5)) for _ in range(3)]
    b = [space.random(np.random.default_rng(5)) for _ in range(3)]
    assert a == b
    assert space.key(Shape(1, 64, 2, 128, 2500, 256)) == (1, 64, 2, 128, 2500, 256, False)


def test_emit_json_is_a_loadable_transformers_config(space):
    from transformers import BertConfig, BertModel

    shape = Shape(2, 64, 4, 128, 2100, 64)
    config = json.loads(space.emit(shape, "json"))
    model = BertModel(BertConfig(**config))
    assert model.config.hidden_size == 64 and model.config.num_hidden_layers == 2
    assert model.embeddings.word_embeddings.weight.shape == (2100, 64)
    namespace: dict = {}
    exec(space.emit(shape, "python"), namespace)
    assert namespace["model"].config.intermediate_size == 128
    with pytest.raises(UserError, match="--lang"):
        space.emit(shape, "c")


def test_depth_cap_bounds_every_genome():
    space = TransformerShapeSpace(TransformerShapeSpace.Config(seq_length=64, max_layers=1), Context())
    rng = np.random.default_rng(3)
    shapes = space.initial(rng, 20)
    for _ in range(100):
        shapes.append(space.mutate(shapes[-1], rng))
    assert space.bounds.max_layers == 1 and all(s.layers == 1 for s in shapes)


def test_static_students_join_the_space_only_when_asked():
    """min_layers=0 adds zero-layer (static table) genomes: valid under the operators, one genome per table."""
    from objectives.model_size import student_size

    space = TransformerShapeSpace(TransformerShapeSpace.Config(seq_length=64, min_layers=0), Context())
    rng = np.random.default_rng(4)
    population = space.initial(rng, 40)
    seen_static = seen_int8 = seen_int8_layers = 0
    for _ in range(600):
        a, b = population[rng.integers(40)], population[rng.integers(40)]
        child = space.mutate(space.crossover(a, b, rng)[0], rng)
        assert space.bounds.contains(child), child
        if child.static:
            seen_static += 1
            seen_int8 += child.int8
            assert (child.heads, child.intermediate, child.positions) == (1, 0, 0)
        else:
            seen_int8_layers += child.int8
            assert child.positions >= 64
        population[rng.integers(40)] = child
    assert seen_static >= 10 and 0 < seen_int8 < seen_static and seen_int8_layers > 10
    table = Shape(0, 128, 1, 0, 9000, 0, True)
    assert table.describe() == "static W128 V9000 int8"
    assert not TransformerShapeSpace(TransformerShapeSpace.Config(seq_length=64), Context()).bounds.contains(table)
    # int8 table: 1 byte per weight plus a 2-byte scale per row; float16: 2 bytes per weight
    int8 = student_size(table, 384, "float16").tensor_bytes
    half = student_size(Shape(0, 128, 1, 0, 9000, 0), 384, "float16").tensor_bytes
    projection = (384 * 128 + 384) * 2
    assert (int8, half) == (9000 * 128 + 9000 * 2 + projection, 9000 * 128 * 2 + projection)
    assert json.loads(space.emit(table, "json")) == {"evoforge_static": True, "vocab_size": 9000, "width": 128,
                                                      "int8": True, "embedding_dim": 384}
    with pytest.raises(UserError, match="min_layers"):
        TransformerShapeSpace(TransformerShapeSpace.Config(min_layers=2), Context())
    quantised = Shape(1, 128, 4, 256, 3000, 64, True)   # a transformer stored int8: half the bytes of float16
    assert quantised.describe() == "L1 H128 A4 I256 V3000 P64 int8" and space.bounds.contains(quantised)
    assert json.loads(space.emit(quantised, "json"))["evoforge_int8"] is True
    assert "evoforge_int8" not in space.emit(quantised, "python")
    assert student_size(quantised, 384, "float16").tensor_bytes < 0.6 * student_size(
        Shape(1, 128, 4, 256, 3000, 64), 384, "float16").tensor_bytes
