"""A found streaming megakernel as a user runs it: Hugging Face Llama weights from a local folder, a certified
schedule, greedy generation on the GPU.

`load_hf_llama(folder)` reads config.json and the *.safetensors files of a LlamaForCausalLM checkpoint (nothing is
downloaded) into the streaming layout; `generate(folder, prompt_ids, new_tokens, genes)` lowers, validates,
compiles and decodes. `evoforge emit RUNDIR --lang python` writes a launcher script that calls it with the found
genes; `--lang cuda` the kernel source and `--lang json` the schedule for `evoforge validate`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from search.protocols import UserError
from spaces.megakernel.lower import ModelDims
from spaces.megakernel.stream import KernelGenes, stream_schedule
from spaces.megakernel.stream_space import load_model_config


def load_hf_llama(folder: str | Path, kv_length: int = 1024) -> tuple[Any, ModelDims, dict[str, np.ndarray]]:
    """(config, dims, weights): the checkpoint's tensors as flat float32 arrays keyed by the streaming layout's
    weight buffers (w_embed, w_qkv, ...), q/k/v and gate/up stacked per layer as the kernel reads them."""
    from safetensors.numpy import load_file

    folder = Path(folder).expanduser()
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise UserError(f"weights: no *.safetensors in {folder}; pass a Hugging Face Llama checkpoint folder")
    config = load_model_config(str(folder))
    d = ModelDims.of(config, kv_length)
    tensors: dict[str, np.ndarray] = {}
    for f in files:
        tensors.update({k: v.astype(np.float32) for k, v in _load(f, load_file).items()})
    prefix = "model." if "model.embed_tokens.weight" in tensors else ""

    def get(name: str) -> np.ndarray:
        if prefix + name not in tensors and name not in tensors:
            raise UserError(f"weights: {name} is missing from {folder}; is this a Llama-family checkpoint?")
        return tensors.get(prefix + name, tensors.get(name))

    layers = range(d.layers)
    w = {"w_embed": get("embed_tokens.weight"), "w_final_norm": get("norm.weight"),
         "w_attn_norm": np.stack([get(f"layers.{i}.input_layernorm.weight") for i in layers]),
         "w_mlp_norm": np.stack([get(f"layers.{i}.post_attention_layernorm.weight") for i in layers]),
         "w_qkv": np.stack([np.concatenate([get(f"layers.{i}.self_attn.{p}_proj.weight") for p in "qkv"]) for i in layers]),
         "w_o": np.stack([get(f"layers.{i}.self_attn.o_proj.weight") for i in layers]),
         "w_gate_up": np.stack([np.concatenate([get(f"layers.{i}.mlp.gate_proj.weight"), get(f"layers.{i}.mlp.up_proj.weight")])
                                for i in layers]),
         "w_down": np.stack([get(f"layers.{i}.mlp.down_proj.weight") for i in layers])}
    if not d.tied:
        w["w_lm_head"] = tensors["lm_head.weight"] if "lm_head.weight" in tensors else w["w_embed"]
    return config, d, {k: np.ascontiguousarray(v).reshape(-1) for k, v in w.items()}


def _load(path: Path, load_file) -> dict[str, np.ndarray]:
    """safetensors.numpy cannot hold bfloat16: such files are read through torch and widened to float32."""
    try:
        return load_file(str(path))
    except (TypeError, ValueError):
        from safetensors.torch import load_file as load_torch

        return {k: v.float().numpy() for k, v in load_torch(str(path)).items()}


def generate(folder: str | Path, prompt: list[int], new_tokens: int, genes: KernelGenes, dtype: str = "bfloat16",
             kv_length: int = 1024) -> list[int]:
    """Greedy generation with the streaming megakernel on the current CUDA device (validated before compiling)."""
    import torch

    from spaces.megakernel.stream_runtime import StreamMegakernel

    config, d, weights = load_hf_llama(folder, kv_length)
    if len(prompt) + new_tokens > kv_length:
        raise UserError(f"new_tokens: prompt + new tokens ({len(prompt) + new_tokens}) exceed the KV length {kv_length}")
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    schedule = stream_schedule(config, genes, sms=sms, kv_length=kv_length)
    mk = StreamMegakernel(schedule, {k: torch.from_numpy(v).cuda() for k, v in weights.items()}, dtype)
    tokens, _ = mk.generate(list(prompt), new_tokens)
    return tokens


def launcher_source(genes: KernelGenes, dtype: str, model_config: str) -> str:
    """The Python launcher `evoforge emit --lang python` writes for a found kernel."""
    return f'''"""Streaming megakernel found by evoforge for {model_config} ({dtype}); genes {genes.as_dict()}.

Run: python THIS_FILE.py CHECKPOINT_FOLDER --prompt 1 2 3 --new-tokens 32
(the folder holds a Llama-family config.json and *.safetensors; the schedule is validated before it is compiled)
"""
from spaces.megakernel.launcher import main
from spaces.megakernel.stream import KernelGenes

GENES = KernelGenes(**{genes.as_dict()!r})

if __name__ == "__main__":
    main(GENES, {dtype!r})
'''


def main(genes: KernelGenes, dtype: str) -> None:
    ap = argparse.ArgumentParser(description="greedy generation with an evoforge streaming megakernel")
    ap.add_argument("checkpoint", help="folder with config.json and *.safetensors of a Llama-family model")
    ap.add_argument("--prompt", type=int, nargs="+", required=True, help="prompt token ids")
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--kv-length", type=int, default=1024)
    args = ap.parse_args()
    try:
        print(" ".join(map(str, generate(args.checkpoint, args.prompt, args.new_tokens, genes, dtype, args.kv_length))))
    except UserError as e:
        raise SystemExit(f"error: {e}") from None
