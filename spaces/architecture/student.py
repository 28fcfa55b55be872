"""The student: a BERT encoder of a searched `Shape` plus a linear projection to the teacher's embedding width.

Saved in the sentence-transformers layout, so it loads both ways offline: `transformers.AutoModel` reads the encoder
(model.safetensors + config.json + tokenizer at the top of the directory) and `sentence_transformers` reads the whole
pipeline (encoder, mean pooling, the projection in 2_Dense/, normalisation). An `int8` student (int8.py: every
matrix as int8 rows with a scale each, half the bytes of float16) keeps the layout, but its safetensors hold int8
and `config.json` says `evoforge_int8`: `load_student` dequantises it; transformers alone cannot read it.

Initialisation from the teacher (what the Compressor paper leaves random): the student's token, position and
segment embeddings are the teacher's rows for the kept tokens, projected onto the top principal directions of the
teacher's token embeddings; the output projection starts as the inverse map of that basis.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import BertConfig, BertModel

from spaces.architecture.shapes import Shape
from spaces.architecture.teacher import pool
from spaces.architecture.vocabulary import ReducedVocabulary

_TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class Student(torch.nn.Module):
    """Encoder -> pooling -> projection: sentence embeddings in the teacher's space (not normalised)."""

    def __init__(self, config, embedding_dim: int, pooling: str = "mean"):
        super().__init__()
        self.encoder = BertModel(config)
        self.pooling = pooling
        self.embedding_dim = embedding_dim
        width = config.hidden_size
        self.projection = None if width == embedding_dim else torch.nn.Linear(width, embedding_dim)

    def forward(self, input_ids, attention_mask):
        return self.project(pool(self.states(input_ids, attention_mask), attention_mask, self.pooling))

    def states(self, input_ids, attention_mask):
        """Last-layer token states (batch, tokens, hidden), before pooling and projection."""
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def project(self, x):
        """Map student-width vectors (..., hidden) into the teacher's embedding space (linear, so it commutes with
        pooling: the projected mean of token states is the mean of projected states)."""
        return x if self.projection is None else self.projection(x)


def build_student(shape: Shape, teacher_config: dict, embedding_dim: int, seed: int, pooling: str = "mean") -> Student:
    """A randomly initialised student (BERT's own init, std 0.02); `seed` fixes the draw."""
    keep = ("hidden_act", "layer_norm_eps", "type_vocab_size", "initializer_range", "position_embedding_type")
    # No dropout: a student this small underfits rather than overfits, and without it training is a pure function
    # of the seed (exact resume from checkpoints, the same score for the same genome on any worker).
    config = BertConfig(vocab_size=shape.vocab, hidden_size=shape.hidden, num_hidden_layers=shape.layers,
                        num_attention_heads=shape.heads, intermediate_size=shape.intermediate,
                        max_position_embeddings=shape.positions, pad_token_id=0, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0,
                        **{k: teacher_config[k] for k in keep if k in teacher_config})
    with torch.random.fork_rng(devices=[]):  # transformers' init draws from torch's global generator
        torch.manual_seed(seed)
        return Student(config, embedding_dim, pooling)


def initialise_from_teacher(student, teacher_model, vocabulary: ReducedVocabulary,
                            target_mean: np.ndarray | None = None, layers: bool = False,
                            token_states: np.ndarray | None = None) -> None:
    """Embeddings from the teacher's, projected on the top principal directions of its kept token embeddings;
    with `layers`, the encoder layers too (see `inherit_layers`).

    With `token_states` (the teacher's sentence embedding of each kept token alone, static.token_states), the rows
    are those instead, on their own principal directions, and the projection maps back to them: at step 0 the
    student is close to a static (model2vec-style) student, already in the teacher's output space, where the
    input-embedding start is not (bench/README.md). Position and segment embeddings then start at zero."""
    with torch.no_grad():
        t_emb = teacher_model.embeddings
        from_states = token_states is not None
        if from_states:
            words = torch.as_tensor(token_states, dtype=torch.float64)
        else:
            words = t_emb.word_embeddings.weight[torch.as_tensor(vocabulary.teacher_ids)].double()
        mean = words.mean(0, keepdim=True)
        width = student.encoder.config.hidden_size
        # Right singular vectors: an orthonormal basis (teacher width x student width) of the main directions.
        # (Full matrices when fewer kept tokens than student features: the complement fills the rest.)
        basis = torch.linalg.svd(words - mean, full_matrices=len(words) < width).Vh[:width].T
        s_emb = student.encoder.embeddings
        rows = (words - mean) @ basis
        s_emb.word_embeddings.weight.copy_(rows.float())
        if from_states:
            s_emb.position_embeddings.weight.zero_()
            s_emb.token_type_embeddings.weight.zero_()
            # LayerNorms scale each token's row to norm ~sqrt(width); the projection scales it back so the pooled
            # vector keeps its size relative to the mean (the bias), as in the static student.
            if student.projection is not None:
                scale = float(rows.norm(dim=1).mean()) / width**0.5
                student.projection.weight.copy_((basis * scale).float())
                student.projection.bias.copy_(mean[0].float() if target_mean is None else
                                              torch.as_tensor(target_mean, dtype=torch.float32))
            if layers:
                inherit_layers(student.encoder, teacher_model, basis.float())
            return
        positions = t_emb.position_embeddings.weight[: s_emb.position_embeddings.weight.shape[0]].double()
        s_emb.position_embeddings.weight.copy_(((positions - positions.mean(0)) @ basis).float())
        segments = t_emb.token_type_embeddings.weight.double()
        s_emb.token_type_embeddings.weight.copy_(((segments - segments.mean(0)) @ basis).float())
        if student.projection is not None:
            student.projection.weight.copy_(basis.float())
            if target_mean is not None:
                student.projection.bias.copy_(torch.as_tensor(target_mean, dtype=torch.float32))
            else:
                student.projection.bias.zero_()
        if layers:
            inherit_layers(student.encoder, teacher_model, basis.float())


def inherit_layers(encoder, teacher_model, basis) -> None:
    """Student layer k starts as teacher layer round(k * teacher depth / student depth), restricted to the
    student's width: hidden-side weights are mapped through `basis` (teacher width x student width, orthonormal
    columns), and the student keeps the teacher's first heads and first feed-forward units.

    Weight selection (a small model initialised from a subset of a large one's weights) gives the single wide
    layer a start near the teacher's own computation instead of noise. Heads are kept only when the student's head
    size equals the teacher's; otherwise attention keeps its random init.
    """
    t_layers = teacher_model.encoder.layer
    s_layers = encoder.encoder.layer
    t_config, s_config = teacher_model.config, encoder.config
    t_head = t_config.hidden_size // t_config.num_attention_heads
    s_head = s_config.hidden_size // s_config.num_attention_heads
    inner = s_config.intermediate_size
    if inner > t_config.intermediate_size:
        return
    P = basis  # (teacher width, student width)
    for k, s_layer in enumerate(s_layers):
        t_layer = t_layers[min(len(t_layers) - 1, round(k * len(t_layers) / len(s_layers)))]
        if s_head == t_head:
            kept = torch.arange(s_config.hidden_size)  # the first student-width rows: the first heads
            for name in ("query", "key", "value"):
                t_lin, s_lin = getattr(t_layer.attention.self, name), getattr(s_layer.attention.self, name)
                s_lin.weight.copy_(t_lin.weight[kept] @ P)
                s_lin.bias.copy_(t_lin.bias[kept])
            t_out, s_out = t_layer.attention.output.dense, s_layer.attention.output.dense
            s_out.weight.copy_(P.T @ t_out.weight[:, kept])
            s_out.bias.copy_(P.T @ t_out.bias)
        t_in, s_in = t_layer.intermediate.dense, s_layer.intermediate.dense
        s_in.weight.copy_(t_in.weight[:inner] @ P)
        s_in.bias.copy_(t_in.bias[:inner])
        t_ffo, s_ffo = t_layer.output.dense, s_layer.output.dense
        s_ffo.weight.copy_(P.T @ t_ffo.weight[:, :inner])
        s_ffo.bias.copy_(P.T @ t_ffo.bias)
        for t_norm, s_norm in ((t_layer.attention.output.LayerNorm, s_layer.attention.output.LayerNorm),
                               (t_layer.output.LayerNorm, s_layer.output.LayerNorm)):
            s_norm.weight.fill_(float(t_norm.weight.mean()))
            s_norm.bias.copy_(P.T @ t_norm.bias)


def embed(student, tokenizer, texts: Sequence[str], max_length: int, batch_size: int = 64) -> np.ndarray:
    """Student sentence embeddings (len(texts), embedding_dim), float32, in eval mode."""
    was_training = student.training
    student.eval()
    out = np.empty((len(texts), student.embedding_dim), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(list(texts[start:start + batch_size]), padding=True, truncation=True,
                              max_length=max_length, return_tensors="pt")
            out[start:start + len(batch["input_ids"])] = student(batch["input_ids"],
                                                                 batch["attention_mask"]).float().numpy()
    student.train(was_training)
    return out


def save_student(student, tokenizer, directory: Path, dtype: str = "float32", max_seq_length: int = 128,
                 int8: bool = False) -> None:
    """Write the student as a transformers + sentence-transformers directory (see the module docstring); with
    `int8`, every matrix as int8 rows and a scale each in `dtype` (objectives/model_size.py counts those bytes)."""
    from safetensors.numpy import save_file as save_numpy
    from safetensors.torch import save_file

    from spaces.architecture.int8 import quantise_state

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    torch_dtype = _TORCH_DTYPES[dtype]
    np_dtype = {"float32": np.float32, "float16": np.float16, "bfloat16": np.float16}[dtype]
    encoder = student.encoder
    if int8:
        config = encoder.config.to_dict()
        config["evoforge_int8"] = True
        (directory / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
        save_numpy(quantise_state(encoder.state_dict(), np_dtype), str(directory / "model.safetensors"),
                   metadata={"format": "pt"})
    else:
        original = next(encoder.parameters()).dtype
        encoder.to(torch_dtype)
        try:
            encoder.save_pretrained(directory)
        finally:
            encoder.to(original)
    tokenizer.save_pretrained(directory)
    width = encoder.config.hidden_size
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    (directory / "1_Pooling").mkdir(exist_ok=True)
    (directory / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": width, "pooling_mode_cls_token": student.pooling == "cls",
        "pooling_mode_mean_tokens": student.pooling == "mean", "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False}, indent=2))
    if student.projection is not None:
        dense = directory / "2_Dense"
        dense.mkdir(exist_ok=True)
        (dense / "config.json").write_text(json.dumps({
            "in_features": width, "out_features": student.embedding_dim, "bias": True,
            "activation_function": "torch.nn.modules.linear.Identity"}, indent=2))
        state = {f"linear.{k}": v for k, v in student.projection.state_dict().items()}
        if int8:
            save_numpy(quantise_state(state, np_dtype), str(dense / "model.safetensors"), metadata={"format": "pt"})
        else:
            save_file({k: v.detach().to(torch_dtype).contiguous() for k, v in state.items()},
                      str(dense / "model.safetensors"), metadata={"format": "pt"})
        modules.append({"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    modules.append({"idx": len(modules), "name": str(len(modules)), "path": f"{len(modules)}_Normalize",
                    "type": "sentence_transformers.models.Normalize"})
    (directory / modules[-1]["path"]).mkdir(exist_ok=True)
    (directory / "modules.json").write_text(json.dumps(modules, indent=2))
    (directory / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_seq_length,
                                                                     "do_lower_case": False}))


def weight_files(directory: Path) -> list[Path]:
    """The student's weight files: the encoder's and, when present, the projection's."""
    directory = Path(directory)
    return [p for p in (directory / "model.safetensors", directory / "2_Dense" / "model.safetensors") if p.is_file()]


def load_student(directory: Path) -> tuple[Any, Any]:
    """(student, tokenizer) from a directory written by `save_student`, offline, as float32 for CPU inference."""
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from spaces.architecture.int8 import dequantise_state

    hf_logging.disable_progress_bar()
    directory = Path(directory)
    int8 = bool(json.loads((directory / "config.json").read_text()).get("evoforge_int8"))
    if int8:
        from safetensors.numpy import load_file as load_numpy
        from transformers import AutoConfig

        encoder = AutoModel.from_config(AutoConfig.from_pretrained(directory, local_files_only=True))
        arrays = dequantise_state(load_numpy(str(directory / "model.safetensors")))
        encoder.load_state_dict({k: torch.as_tensor(v) for k, v in arrays.items()}, strict=True)
        encoder.float()
    else:
        encoder = AutoModel.from_pretrained(directory, local_files_only=True, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    dense_dir = directory / "2_Dense"
    pooling = json.loads((directory / "1_Pooling" / "config.json").read_text())
    mode = "cls" if pooling.get("pooling_mode_cls_token") else "mean"
    width = encoder.config.hidden_size
    embedding_dim = width
    if dense_dir.is_dir():
        embedding_dim = json.loads((dense_dir / "config.json").read_text())["out_features"]
    student = Student(encoder.config, embedding_dim, mode)
    student.encoder = encoder
    if student.projection is not None:
        weights = load_file(str(dense_dir / "model.safetensors"))
        if int8:
            weights = {k: torch.as_tensor(v) for k, v in dequantise_state({k: v.numpy() for k, v in weights.items()}).items()}
        student.projection.load_state_dict({k.removeprefix("linear."): v.float() for k, v in weights.items()})
    student.eval()
    return student, tokenizer
