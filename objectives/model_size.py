"""Size of a saved student, exactly: its tensors' bytes, plus a tight bound on the safetensors headers.

MB here is always 10^6 bytes (the unit of the "3 MB" in the Compressor paper and of `--to 3MB`).

A transformer student is saved as two safetensors files (see spaces/architecture/student.py): the BERT encoder
(`model.safetensors`, loadable by transformers alone) and the projection to the teacher's embedding width
(`2_Dense/model.safetensors`, the sentence-transformers layout; absent when the widths already match). Each file is
an 8-byte length, a JSON header, then the raw tensor bytes, so its size is header + parameters x bytes per
parameter; an `int8` transformer stores each matrix as int8 rows plus a `_scale` vector in the saved dtype
(spaces/architecture/int8.py). The tensor table below is the single source for both the parameter count and the header bound; a test
checks it against the state dict of a real `transformers.BertModel` and against written files. A static student
(zero layers, spaces/architecture/static.py) is one file: the token table (int8 with a float scale per row, or the
saved dtype), the projection to the teacher's width and its bias.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from search.protocols import Evaluation, Objective, UserError
from spaces.architecture.shapes import Shape

MB = 10**6
BYTES_PER_PARAMETER = {"float32": 4, "float16": 2, "bfloat16": 2}
_SAFETENSORS_DTYPE = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "int8": "I8"}
_ELEMENT_BYTES = {**BYTES_PER_PARAMETER, "int8": 1}
# transformers writes {"format": "pt"} into every safetensors header it saves.
_METADATA = {"format": "pt"}


def encoder_tensors(shape: Shape, type_vocab: int = 2) -> list[tuple[str, tuple[int, ...]]]:
    """Names and shapes of a `BertModel` state dict (with pooler) for `shape`, in transformers' naming."""
    h, i = shape.hidden, shape.intermediate
    table: list[tuple[str, tuple[int, ...]]] = [
        ("embeddings.word_embeddings.weight", (shape.vocab, h)),
        ("embeddings.position_embeddings.weight", (shape.positions, h)),
        ("embeddings.token_type_embeddings.weight", (type_vocab, h)),
        ("embeddings.LayerNorm.weight", (h,)),
        ("embeddings.LayerNorm.bias", (h,)),
    ]
    for n in range(shape.layers):
        p = f"encoder.layer.{n}."
        for name in ("query", "key", "value"):
            table += [(f"{p}attention.self.{name}.weight", (h, h)), (f"{p}attention.self.{name}.bias", (h,))]
        table += [(f"{p}attention.output.dense.weight", (h, h)), (f"{p}attention.output.dense.bias", (h,)),
                  (f"{p}attention.output.LayerNorm.weight", (h,)), (f"{p}attention.output.LayerNorm.bias", (h,)),
                  (f"{p}intermediate.dense.weight", (i, h)), (f"{p}intermediate.dense.bias", (i,)),
                  (f"{p}output.dense.weight", (h, i)), (f"{p}output.dense.bias", (h,)),
                  (f"{p}output.LayerNorm.weight", (h,)), (f"{p}output.LayerNorm.bias", (h,))]
    table += [("pooler.dense.weight", (h, h)), ("pooler.dense.bias", (h,))]
    return table


def projection_tensors(shape: Shape, embedding_dim: int) -> list[tuple[str, tuple[int, ...]]]:
    """The projection from the student's width to the teacher's embedding width (none when they are equal)."""
    if shape.hidden == embedding_dim:
        return []
    return [("linear.weight", (embedding_dim, shape.hidden)), ("linear.bias", (embedding_dim,))]


def static_tensors(shape: Shape, embedding_dim: int, dtype: str) -> list[tuple[str, tuple[int, ...], str]]:
    """(name, dims, dtype) of a static student's file: the table, its per-row scales when int8, the projection."""
    table: list[tuple[str, tuple[int, ...], str]] = [("embeddings", (shape.vocab, shape.hidden),
                                                      "int8" if shape.int8 else dtype)]
    if shape.int8:
        table.append(("scales", (shape.vocab,), dtype))
    if shape.hidden != embedding_dim:
        table.append(("projection.weight", (embedding_dim, shape.hidden), dtype))
    table.append(("projection.bias", (embedding_dim,), dtype))
    return table


def int8_tensors(table: list[tuple[str, tuple[int, ...]]], dtype: str) -> list[tuple[str, tuple[int, ...], str]]:
    """(name, dims, dtype) of a file that stores `table` as int8.py does: each matrix as int8 rows and a scale per
    row in `dtype`, every other tensor in `dtype`."""
    typed: list[tuple[str, tuple[int, ...], str]] = []
    for name, dims in table:
        if len(dims) == 2:
            typed += [(name, dims, "int8"), (name + "_scale", (dims[0],), dtype)]
        else:
            typed.append((name, dims, dtype))
    return typed


def typed_file_bound(table: list[tuple[str, tuple[int, ...], str]]) -> int:
    """Upper bound on the bytes of a safetensors file holding `table` (name, dims, dtype): data + header."""
    payload = sum(_count([(n, d)]) * _ELEMENT_BYTES[t] for n, d, t in table)
    header = {"__metadata__": _METADATA}
    for name, dims, dtype in table:
        header[name] = {"dtype": _SAFETENSORS_DTYPE[dtype], "shape": list(dims), "data_offsets": [payload, payload]}
    return payload + 8 + len(json.dumps(header, separators=(",", ":"))) + 7


def _count(table: list[tuple[str, tuple[int, ...]]]) -> int:
    total = 0
    for _, dims in table:
        n = 1
        for d in dims:
            n *= d
        total += n
    return total


def header_bound(table: list[tuple[str, tuple[int, ...]]], dtype: str) -> int:
    """Upper bound on a safetensors file's bytes before the tensor data: 8-byte length + JSON header + padding.

    Exact except for the digits of the data offsets, which are bounded by writing every offset with as many digits
    as the total payload, and the alignment padding (at most 7 spaces).
    """
    if not table:
        return 0
    payload = _count(table) * BYTES_PER_PARAMETER[dtype]
    header = {"__metadata__": _METADATA}
    for name, dims in table:
        header[name] = {"dtype": _SAFETENSORS_DTYPE[dtype], "shape": list(dims), "data_offsets": [payload, payload]}
    return 8 + len(json.dumps(header, separators=(",", ":"))) + 7


@dataclass(frozen=True)
class SizeReport:
    """Parameters and bytes of one student: exact tensor bytes, and an upper bound on the files' total bytes."""

    parameters: int
    tensor_bytes: int
    file_bytes_bound: int

    @property
    def tensor_mb(self) -> float:
        return self.tensor_bytes / MB

    @property
    def file_mb_bound(self) -> float:
        return self.file_bytes_bound / MB


def student_size(shape: Shape, embedding_dim: int, dtype: str = "float32", type_vocab: int = 2) -> SizeReport:
    """Size of the student of `shape` saved in `dtype` (encoder file + projection file)."""
    if dtype not in BYTES_PER_PARAMETER:
        raise UserError(f"dtype: {dtype!r} is not supported; choose one of {', '.join(BYTES_PER_PARAMETER)}")
    if shape.static:
        table = static_tensors(shape, embedding_dim, dtype)
        tensor_bytes = sum(_count([(n, d)]) * _ELEMENT_BYTES[t] for n, d, t in table)
        return SizeReport(parameters=_count([(n, d) for n, d, _ in table]), tensor_bytes=tensor_bytes,
                          file_bytes_bound=typed_file_bound(table))
    encoder, projection = encoder_tensors(shape, type_vocab), projection_tensors(shape, embedding_dim)
    parameters = _count(encoder) + _count(projection)
    if shape.int8:
        files = [int8_tensors(t, dtype) for t in (encoder, projection) if t]
        return SizeReport(parameters=parameters,
                          tensor_bytes=sum(_count([(n, d)]) * _ELEMENT_BYTES[t] for f in files for n, d, t in f),
                          file_bytes_bound=sum(typed_file_bound(f) for f in files))
    tensor_bytes = parameters * BYTES_PER_PARAMETER[dtype]
    bound = tensor_bytes + header_bound(encoder, dtype) + header_bound(projection, dtype)
    return SizeReport(parameters=parameters, tensor_bytes=tensor_bytes, file_bytes_bound=bound)


def parse_megabytes(text: str, field: str = "--to") -> float:
    """"3MB", "3 mb", "2.5", "500KB" -> megabytes (10^6 bytes)."""
    raw = text.strip().lower().replace(" ", "")
    scale = 1.0
    for suffix, factor in (("mb", 1.0), ("kb", 1e-3), ("gb", 1e3), ("m", 1.0)):
        if raw.endswith(suffix):
            raw, scale = raw[: -len(suffix)], factor
            break
    try:
        value = float(raw) * scale
    except ValueError:
        raise UserError(f"{field}: {text!r} is not a size; write it like 3MB, 0.5MB or 800KB") from None
    if not 0 < value < float("inf"):
        raise UserError(f"{field}: {text!r} must be a positive, finite size, like 3MB")
    return value


class ModelSize(Objective):
    """Student size in MB (10^6 bytes) with the hard constraint size <= limit_mb.

    The constrained size is the bound on the written files (headers included), so a feasible student's files
    never exceed the limit. With `objective = false` only the constraint is kept (the Compressor setting: maximise
    GFLOPs subject to size); the size still appears in the front's extras.
    """

    @dataclass(frozen=True)
    class Config:
        limit_mb: float = 3.0      # MB (10^6 bytes) the saved student may take
        dtype: str = "float32"     # dtype the student is saved in: float32, float16 or bfloat16
        objective: bool = True     # also minimise size (else constraint only)

    constraints = ("size_limit",)

    def __init__(self, config: ModelSize.Config, space, context):
        super().__init__(config, space, context)
        if config.dtype not in BYTES_PER_PARAMETER:
            raise UserError(f"dtype: {config.dtype!r} is not supported; choose one of "
                            f"{', '.join(BYTES_PER_PARAMETER)}")
        if not config.limit_mb > 0:
            raise UserError(f"limit_mb: {config.limit_mb} must be positive, like 3.0")
        self.names = ("size_mb",) if config.objective else ()
        self.directions = ("min",) if config.objective else ()
        self.embedding_dim = int(space.teacher_config["hidden_size"])
        self.type_vocab = int(space.teacher_config.get("type_vocab_size", 2))

    def evaluate(self, genome: Shape) -> Evaluation:
        report = student_size(genome, self.embedding_dim, self.config.dtype, self.type_vocab)
        size = report.file_mb_bound
        return Evaluation(values=(size,) if self.config.objective else (),
                          violations=(max(0.0, size - self.config.limit_mb),),
                          extras={"size_mb": size, "parameters": report.parameters})
