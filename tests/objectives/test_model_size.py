"""Student size: the analytic tensor table against real models and written files (MB = 10^6 bytes)."""

import dataclasses
import json
import struct

import numpy as np
import pytest
import torch

from objectives.model_size import MB, ModelSize, encoder_tensors, parse_megabytes, projection_tensors, student_size
from search.protocols import Context, UserError
from spaces.architecture.shapes import Shape, TransformerShapeSpace
from spaces.architecture.student import build_student, save_student, weight_files
from spaces.architecture.vocabulary import ReducedVocabulary, student_tokenizer

SHAPES = [Shape(2, 32, 4, 64, 300, 64), Shape(1, 48, 3, 96, 257, 80), Shape(3, 384, 12, 64, 400, 64)]


@pytest.mark.parametrize("shape", SHAPES)
def test_tensor_table_matches_a_real_bert_state_dict(shape):
    student = build_student(shape, {}, 384, seed=0)
    real = {k: tuple(v.shape) for k, v in student.encoder.state_dict().items()}
    assert dict(encoder_tensors(shape)) == real
    projection = {} if student.projection is None else {
        f"linear.{k}": tuple(v.shape) for k, v in student.projection.state_dict().items()}
    assert dict(projection_tensors(shape, 384)) == projection
    assert student_size(shape, 384).parameters == sum(p.numel() for p in student.parameters())


def _header_bytes(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
    return 8 + n


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("shape", SHAPES[:2])
def test_size_is_exact_against_the_written_files(tmp_path, shape, dtype):
    from transformers import BertTokenizer

    base = BertTokenizer(vocab={t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] +
                                                          [chr(97 + i % 26) * (1 + i // 26) for i in range(400)])})
    tokens = tuple(list(base.get_vocab())[: shape.vocab])
    tokenizer = student_tokenizer(base, ReducedVocabulary(tokens, np.arange(len(tokens))), shape.positions)
    student = build_student(shape, {}, 384, seed=0)
    save_student(student, tokenizer, tmp_path, dtype)
    files = weight_files(tmp_path)
    report = student_size(shape, 384, dtype)
    tensor_bytes = sum(f.stat().st_size - _header_bytes(f) for f in files)
    assert tensor_bytes == report.tensor_bytes == report.parameters * (4 if dtype == "float32" else 2)
    written = sum(f.stat().st_size for f in files)
    assert written <= report.file_bytes_bound < written + 64 * len(files)  # bound is tight: offset digits + pad
    header = json.loads(open(files[0], "rb").read(_header_bytes(files[0]))[8:])
    assert {v["dtype"] for k, v in header.items() if k != "__metadata__"} == {"F32" if dtype == "float32" else "F16"}


def test_objective_constraint_and_units():
    space = TransformerShapeSpace(TransformerShapeSpace.Config(), Context())
    shape = Shape(2, 128, 4, 256, 3000, 128)
    exact = student_size(shape, 384)
    assert exact.parameters == (3000 * 128 + 128 * 128 + 2 * 128 + 2 * 128
                                + 2 * (4 * (128 * 128 + 128) + 2 * 128 + 2 * 128 * 256 + 256 + 128 + 2 * 128)
                                + 128 * 128 + 128 + 384 * 128 + 384)
    tight = ModelSize(ModelSize.Config(limit_mb=exact.file_bytes_bound / MB - 1e-6), space, Context())
    loose = ModelSize(ModelSize.Config(limit_mb=exact.file_bytes_bound / MB), space, Context())
    assert tight.evaluate(shape).violations[0] > 0 and loose.evaluate(shape).feasible
    only = ModelSize(ModelSize.Config(limit_mb=3.0, objective=False), space, Context())
    assert only.names == () and only.evaluate(shape).values == ()
    assert only.evaluate(shape).extras["size_mb"] == pytest.approx(exact.file_bytes_bound / 1e6)
    with pytest.raises(UserError, match="dtype"):
        ModelSize(ModelSize.Config(dtype="int3"), space, Context())


def test_parse_megabytes():
    assert parse_megabytes("3MB") == 3.0
    assert parse_megabytes("0.5 mb") == 0.5
    assert parse_megabytes("800KB") == pytest.approx(0.8)
    assert parse_megabytes("10") == 10.0
    for bad in ("three", "-1MB", "0MB", ""):
        with pytest.raises(UserError, match="--to"):
            parse_megabytes(bad)


def test_float16_halves_the_tensor_bytes():
    shape = SHAPES[0]
    assert student_size(shape, 384, "float16").tensor_bytes * 2 == student_size(shape, 384).tensor_bytes
    assert torch.tensor([], dtype=torch.float16).element_size() == 2


@pytest.mark.parametrize("shape", [Shape(2, 32, 4, 64, 300, 64, True), Shape(1, 48, 3, 96, 257, 80, True)])
def test_int8_students_size_is_exact_and_they_load_as_the_rounded_weights(tmp_path, shape):
    """An int8 transformer: each matrix as int8 rows + a float16 scale per row, vectors in float16; the size table
    matches the written files, and load_student gives back exactly the weights fake_quantise_ rounds to."""
    from transformers import BertTokenizer

    from spaces.architecture.int8 import fake_quantise_
    from spaces.architecture.student import load_student

    base = BertTokenizer(vocab={t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] +
                                                          [chr(97 + i % 26) * (1 + i // 26) for i in range(400)])})
    tokens = tuple(list(base.get_vocab())[: shape.vocab])
    tokenizer = student_tokenizer(base, ReducedVocabulary(tokens, np.arange(len(tokens))), shape.positions)
    student = build_student(shape, {}, 384, seed=0)
    save_student(student, tokenizer, tmp_path, "float16", int8=True)
    files = weight_files(tmp_path)
    report = student_size(shape, 384, "float16")
    assert sum(f.stat().st_size - _header_bytes(f) for f in files) == report.tensor_bytes
    written = sum(f.stat().st_size for f in files)
    assert written <= report.file_bytes_bound < written + 64 * len(files)
    matrices = sum(d[0] * d[1] for _, d in encoder_tensors(shape) + projection_tensors(shape, 384) if len(d) == 2)
    rows = sum(d[0] for _, d in encoder_tensors(shape) + projection_tensors(shape, 384) if len(d) == 2)
    assert report.tensor_bytes == matrices + 2 * rows + 2 * (report.parameters - matrices)
    assert report.tensor_bytes < 0.6 * student_size(Shape(*dataclasses.astuple(shape)[:6]), 384, "float16").tensor_bytes
    header = json.loads(open(files[0], "rb").read(_header_bytes(files[0]))[8:])
    assert header["encoder.layer.0.attention.self.query.weight"]["dtype"] == "I8"
    loaded, _ = load_student(tmp_path)
    fake_quantise_(student)
    ids = torch.randint(0, shape.vocab, (3, 12))
    with torch.no_grad():
        assert torch.equal(loaded(ids, torch.ones_like(ids)), student(ids, torch.ones_like(ids)))
