"""The streaming-megakernel space: genomes are `KernelGenes` for one Llama config (spaces/megakernel/stream.py).

Every genome lowers to a schedule the static validator certifies before anything is compiled; the GPU-timed
objective (objectives/decode_time.py) scores it by measured time per token, and the schedule's cost-model makespan
is the cheap proxy a staged run can calibrate. `--model-config` takes a preset name (llama-3.2-1b, hidden-1024,
toy) or a Hugging Face config.json; nothing is downloaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from search.protocols import Space, UserError
from spaces.megakernel.ir import Schedule, to_json
from spaces.megakernel.lower import LlamaShape, ModelDims
from spaces.megakernel.stream import CONFIGS, KernelGenes, stream_schedule

GENE_NAMES = tuple(KernelGenes.CHOICES)


def load_model_config(name_or_path: str) -> Any:
    """A preset name, or a Hugging Face config.json of a Llama-family model (read as plain JSON)."""
    if name_or_path in CONFIGS:
        return CONFIGS[name_or_path]
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise UserError(f"space.model_config: {name_or_path!r} is neither a preset ({', '.join(CONFIGS)}) nor a "
                        "config.json; pass a preset name or the path of a Llama config.json")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"space.model_config: {path} is not valid JSON ({e})") from None
    need = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
    missing = [k for k in need if k not in raw]
    if missing:
        raise UserError(f"space.model_config: {path} lacks {', '.join(missing)}; give a Llama-family config.json")
    rope = raw.get("rope_scaling") or raw.get("rope_parameters") or {}
    return LlamaShape(hidden_size=raw["hidden_size"], intermediate_size=raw["intermediate_size"],
                      num_hidden_layers=raw["num_hidden_layers"], num_attention_heads=raw["num_attention_heads"],
                      num_key_value_heads=raw.get("num_key_value_heads") or raw["num_attention_heads"],
                      vocab_size=raw["vocab_size"], max_position_embeddings=raw.get("max_position_embeddings", 2048),
                      rms_norm_eps=raw.get("rms_norm_eps", 1e-6),
                      rope_theta=raw.get("rope_theta") or rope.get("rope_theta", 10000.0), head_dim=raw.get("head_dim"),
                      tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
                      rope_scaling=tuple(sorted(rope.items())) if isinstance(rope, dict) else ())


class StreamKernelSpace(Space):
    @dataclass(frozen=True)
    class Config:
        model_config: str = "hidden-1024"   # preset name or a config.json path
        kv_length: int = 1024               # KV-cache positions the kernel is built for
        sms: int = 132                      # SMs of the target GPU (H100 SXM: 132)
        dtype: str = "bfloat16"             # weights and KV cache: bfloat16 or float32

    emit_languages = ("cuda", "python", "json")

    def __init__(self, config, context):
        super().__init__(config, context)
        if config.dtype not in ("bfloat16", "float32"):
            raise UserError(f"space.dtype: {config.dtype!r} is not supported; use bfloat16 or float32")
        if config.kv_length < 1 or config.sms < 1:
            raise UserError("space.kv_length/sms: must be positive integers")
        self.model = load_model_config(config.model_config)
        self.dims = ModelDims.of(self.model, config.kv_length)
        if self.dims.heads % self.dims.kv_heads or self.dims.head_dim % 2:
            raise UserError("space.model_config: heads must be a multiple of kv_heads and head_dim even")

    def hand_written(self) -> KernelGenes:
        """What a person writes first: one block per SM, 8 warps, 4 loads in flight, no prefetch."""
        return KernelGenes()

    def schedule(self, g: KernelGenes) -> Schedule:
        s = _schedule(self.model, self.schedule_key(g), self.config.sms, self.config.kv_length)
        return replace(s, meta={**s.meta, "genes": g.as_dict()})

    def schedule_key(self, g: KernelGenes) -> tuple[int, ...]:
        """The genes that change the schedule; the others only change the compiled code."""
        return tuple(getattr(g, n) for n in SCHEDULE_GENES)

    def random(self, rng):
        return KernelGenes(**{k: v[int(rng.integers(len(v)))] for k, v in KernelGenes.CHOICES.items()})

    def initial(self, rng, size):
        out = [self.hand_written()]
        while len(out) < size:
            out.append(self.random(rng))
        return out

    def mutate(self, g: KernelGenes, rng):
        name = GENE_NAMES[int(rng.integers(len(GENE_NAMES)))]
        choices = KernelGenes.CHOICES[name]
        i = choices.index(getattr(g, name))
        step = int(rng.choice([-1, 1])) if rng.random() < 0.7 else int(rng.integers(1, len(choices)))
        return replace(g, **{name: choices[(i + step) % len(choices)]})

    def crossover(self, a: KernelGenes, b: KernelGenes, rng):
        mask = rng.random(len(GENE_NAMES)) < 0.5
        c1 = {n: getattr(a if m else b, n) for n, m in zip(GENE_NAMES, mask)}
        c2 = {n: getattr(b if m else a, n) for n, m in zip(GENE_NAMES, mask)}
        return KernelGenes(**c1), KernelGenes(**c2)

    def neighbourhood(self, g: KernelGenes) -> list[list[KernelGenes]]:
        """For search.local_search.polish: per gene, the genomes that differ from `g` in that gene only."""
        return [[replace(g, **{n: v}) for v in KernelGenes.CHOICES[n] if v != getattr(g, n)] for n in GENE_NAMES]

    def key(self, g: KernelGenes):
        return tuple(getattr(g, n) for n in GENE_NAMES)

    def describe(self, g: KernelGenes) -> str:
        return " ".join(f"{n}={getattr(g, n)}" for n in GENE_NAMES)

    def emit(self, g: KernelGenes, lang: str) -> str:
        if lang == "json":
            return to_json(self.schedule(g)) + "\n"
        if lang == "cuda":
            from spaces.megakernel.emit_stream import emit_stream_cuda

            return emit_stream_cuda(self.dims, g, self.config.dtype)
        if lang == "python":
            from spaces.megakernel.launcher import launcher_source

            return launcher_source(g, self.config.dtype, self.config.model_config)
        raise self.unsupported(lang)


SCHEDULE_GENES = ("blocks_per_sm", "chunks", "tiles", "fuse_mlp", "split_o", "fuse_embed")


@lru_cache(maxsize=8)
def _schedule(model: Any, key: tuple[int, ...], sms: int, kv_length: int) -> Schedule:
    return stream_schedule(model, KernelGenes(**dict(zip(SCHEDULE_GENES, key))), sms=sms, kv_length=kv_length)
