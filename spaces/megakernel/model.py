"""A tiny Llama's weights in the megakernel's flat layout, and the plain forward pass every schedule must reproduce.

Weights are float32 arrays keyed by the weight buffers of spaces/megakernel/lower.py (w_embed, w_qkv, ...), drawn
from a numpy Generator. `reference_step` is a straightforward batch-1 decode step written op by op (no tiles, no
schedule): it is the executor's peer. `to_transformers` loads the same weights into a `transformers`
LlamaForCausalLM, so the reference itself is checked against Hugging Face.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from spaces.megakernel.lower import ModelDims


def random_weights(d: ModelDims, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random weights with fan-in scaling (so logits are spread and greedy decoding is not a tie-break lottery)."""
    H, inter, L, V, Q = d.hidden, d.intermediate, d.layers, d.vocab, d.heads * d.head_dim

    def mat(rows, cols, count=1):
        return (rng.standard_normal((count, rows, cols)) / np.sqrt(cols)).astype(np.float32)

    return {
        "w_embed": rng.standard_normal((V, H)).astype(np.float32),
        "w_attn_norm": (1 + 0.1 * rng.standard_normal((L, H))).astype(np.float32),
        "w_qkv": mat(d.qkv_rows, H, L),
        "w_o": mat(H, Q, L),
        "w_mlp_norm": (1 + 0.1 * rng.standard_normal((L, H))).astype(np.float32),
        "w_gate_up": mat(2 * inter, H, L),
        "w_down": mat(H, inter, L),
        "w_final_norm": (1 + 0.1 * rng.standard_normal(H)).astype(np.float32),
        "w_lm_head": mat(V, H)[0],
    }


def rope(x: np.ndarray, pos: int, theta: float) -> np.ndarray:
    """Rotary embedding of (heads, head_dim) at position `pos`, Hugging Face's rotate_half convention."""
    hd = x.shape[-1]
    inv = 1.0 / (theta ** (np.arange(0, hd, 2, dtype=np.float32) / hd))
    ang = np.float32(pos) * inv
    cos, sin = np.cos(np.concatenate([ang, ang])), np.sin(np.concatenate([ang, ang]))
    rot = np.concatenate([-x[..., hd // 2:], x[..., : hd // 2]], axis=-1)
    return (x * cos + rot * sin).astype(np.float32)


def rmsnorm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    return (x / np.sqrt(np.mean(x * x) + np.float32(eps)) * w).astype(np.float32)


def silu(x: np.ndarray) -> np.ndarray:
    return x / (1 + np.exp(-x))


def new_cache(d: ModelDims) -> dict[str, np.ndarray]:
    shape = (d.layers, d.kv_heads, d.max_positions, d.head_dim)
    return {"k": np.zeros(shape, np.float32), "v": np.zeros(shape, np.float32)}


def reference_step(w: dict[str, np.ndarray], d: ModelDims, token: int, pos: int, cache: dict[str, np.ndarray]) -> np.ndarray:
    """Logits (vocab,) for `token` at `pos`; appends this position's K and V to `cache`."""
    hd, nh, nkv = d.head_dim, d.heads, d.kv_heads
    x = w["w_embed"][token].copy()
    for layer in range(d.layers):
        h = rmsnorm(x, w["w_attn_norm"][layer], d.eps)
        qkv = w["w_qkv"][layer] @ h
        q = rope(qkv[: nh * hd].reshape(nh, hd), pos, d.rope_theta)
        k = rope(qkv[nh * hd:(nh + nkv) * hd].reshape(nkv, hd), pos, d.rope_theta)
        cache["k"][layer, :, pos] = k
        cache["v"][layer, :, pos] = qkv[(nh + nkv) * hd:].reshape(nkv, hd)
        group = nh // nkv
        out = np.empty((nh, hd), np.float32)
        for head in range(nh):
            keys, values = cache["k"][layer, head // group, : pos + 1], cache["v"][layer, head // group, : pos + 1]
            s = keys @ q[head] / np.sqrt(np.float32(hd))
            p = np.exp(s - s.max())
            out[head] = (p / p.sum()) @ values
        x = x + w["w_o"][layer] @ out.reshape(-1)
        h = rmsnorm(x, w["w_mlp_norm"][layer], d.eps)
        gu = w["w_gate_up"][layer] @ h
        x = x + w["w_down"][layer] @ (silu(gu[: d.intermediate]) * gu[d.intermediate:])
    return w["w_lm_head"] @ rmsnorm(x, w["w_final_norm"], d.eps)


def greedy_decode(step, prompt: list[int], new_tokens: int) -> list[int]:
    """Greedy decoding with any `step(token, pos) -> logits` (reference, executor or GPU kernel)."""
    tokens = list(prompt)
    for pos in range(len(prompt) + new_tokens - 1):
        logits = step(tokens[pos], pos)
        if pos >= len(prompt) - 1:
            tokens.append(int(np.argmax(logits)))
    return tokens


def transformers_config(d: ModelDims) -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(hidden_size=d.hidden, intermediate_size=d.intermediate, num_hidden_layers=d.layers,
                       num_attention_heads=d.heads, num_key_value_heads=d.kv_heads, head_dim=d.head_dim,
                       vocab_size=d.vocab, max_position_embeddings=d.max_positions, rms_norm_eps=d.eps,
                       rope_theta=d.rope_theta, tie_word_embeddings=False, attention_bias=False, mlp_bias=False)


def to_transformers(w: dict[str, np.ndarray], d: ModelDims) -> Any:
    """A transformers LlamaForCausalLM (float32, eval mode) holding exactly these weights."""
    import torch
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM(transformers_config(d)).eval().float()
    Q, KV, inter = d.heads * d.head_dim, d.kv_heads * d.head_dim, d.intermediate
    sd = {"model.embed_tokens.weight": w["w_embed"], "model.norm.weight": w["w_final_norm"], "lm_head.weight": w["w_lm_head"]}
    for layer in range(d.layers):
        p = f"model.layers.{layer}."
        sd.update({p + "input_layernorm.weight": w["w_attn_norm"][layer], p + "post_attention_layernorm.weight": w["w_mlp_norm"][layer],
                   p + "self_attn.q_proj.weight": w["w_qkv"][layer][:Q], p + "self_attn.k_proj.weight": w["w_qkv"][layer][Q:Q + KV],
                   p + "self_attn.v_proj.weight": w["w_qkv"][layer][Q + KV:], p + "self_attn.o_proj.weight": w["w_o"][layer],
                   p + "mlp.gate_proj.weight": w["w_gate_up"][layer][:inter], p + "mlp.up_proj.weight": w["w_gate_up"][layer][inter:],
                   p + "mlp.down_proj.weight": w["w_down"][layer]})
    model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()}, strict=True)
    return model
