"""The peers of the streaming megakernel: the same decode step in plain PyTorch (one kernel per op, cuBLAS GEMVs,
static KV cache), run eagerly, captured in a CUDA graph, or compiled with `torch.compile(mode="reduce-overhead")`;
and `transformers`' LlamaForCausalLM holding the same weights, for the tokens check.

The step takes the token and position as 0-d int64 CUDA tensors and only indexes with them (no host sync), writes
its argmax back into the token tensor and advances the position, so a captured graph replays greedy decoding on
its own: 128 replays are 128 tokens.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from spaces.megakernel.lower import ModelDims, rope_inv_freq


def views(w: dict[str, Any], d: ModelDims) -> dict[str, Any]:
    """The flat weight tensors of random_weights_gpu reshaped per layer."""
    H, inter, L, V, Q, R = d.hidden, d.intermediate, d.layers, d.vocab, d.heads * d.head_dim, d.qkv_rows
    out = {"embed": w["w_embed"].view(V, H), "attn_norm": w["w_attn_norm"].view(L, H), "qkv": w["w_qkv"].view(L, R, H),
           "o": w["w_o"].view(L, H, Q), "mlp_norm": w["w_mlp_norm"].view(L, H), "gate_up": w["w_gate_up"].view(L, 2 * inter, H),
           "down": w["w_down"].view(L, H, inter), "final_norm": w["w_final_norm"]}
    out["lm_head"] = out["embed"] if d.tied else w["w_lm_head"].view(V, H)
    return out


def make_step(w: dict[str, Any], d: ModelDims):
    """A torch.nn.Module whose forward(tok, pos) -> (logits, next token) is one greedy decode step; the KV caches
    are its buffers `k` and `v`, each (layers, kv_heads, positions, head_dim) in the weights' dtype, written in
    place at `pos` (what torch.compile's CUDA graphs support, as in gpt-fast)."""
    import torch
    import torch.nn.functional as F

    class DecodeStep(torch.nn.Module):
        def __init__(self):
            super().__init__()
            vw = views(w, d)
            for name, t in vw.items():
                self.register_buffer(name, t, persistent=False)
            dt, dev = vw["embed"].dtype, vw["embed"].device
            inv = torch.from_numpy(rope_inv_freq(d)).to(dev)
            ang = torch.arange(d.max_positions, device=dev, dtype=torch.float32)[:, None] * inv[None]
            self.register_buffer("cos", torch.cat([ang, ang], -1).cos())
            self.register_buffer("sin", torch.cat([ang, ang], -1).sin())
            self.register_buffer("k", torch.zeros(d.layers, d.kv_heads, d.max_positions, d.head_dim, dtype=dt, device=dev))
            self.register_buffer("v", torch.zeros_like(self.k))
            self.register_buffer("positions", torch.arange(d.max_positions, device=dev))

        def forward(self, tok, pos):
            nh, nkv, hd, inter = d.heads, d.kv_heads, d.head_dim, d.intermediate
            Q, KV, G = nh * hd, nkv * hd, nh // nkv
            dt = self.embed.dtype

            def rms(x, g):
                xf = x.float()
                return g * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + d.eps)).to(dt)

            def rope(x, c, s):
                xf = x.float()
                return (xf * c + torch.cat([-xf[..., hd // 2:], xf[..., : hd // 2]], -1) * s).to(dt)

            x = self.embed.index_select(0, tok.view(1))                     # (1, H)
            c, s = self.cos.index_select(0, pos.view(1)), self.sin.index_select(0, pos.view(1))
            mask = self.positions > pos
            for layer in range(d.layers):
                qkv = F.linear(rms(x, self.attn_norm[layer]), self.qkv[layer])
                q = rope(qkv[:, :Q].view(nh, hd), c, s)
                k = rope(qkv[:, Q:Q + KV].view(nkv, hd), c, s)
                self.k[layer].index_copy_(1, pos.view(1), k.unsqueeze(1))
                self.v[layer].index_copy_(1, pos.view(1), qkv[:, Q + KV:].view(nkv, 1, hd))
                scores = (q.view(nkv, G, hd) @ self.k[layer].transpose(1, 2)).float() * hd ** -0.5
                p = torch.softmax(scores.masked_fill(mask, float("-inf")), -1).to(dt)
                x = x + F.linear((p @ self.v[layer]).reshape(1, Q), self.o[layer])
                gu = F.linear(rms(x, self.mlp_norm[layer]), self.gate_up[layer])
                x = x + F.linear(F.silu(gu[:, :inter]) * gu[:, inter:], self.down[layer])
            logits = F.linear(rms(x, self.final_norm), self.lm_head).float()[0]
            return logits, logits.argmax()

    return DecodeStep()


def _timed(run, steps: int, repeats: int) -> tuple[float, list[float]]:
    import torch

    run()
    torch.cuda.synchronize()
    samples = []
    for _ in range(repeats):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        run()
        b.record()
        torch.cuda.synchronize()
        samples.append(a.elapsed_time(b) * 1e3 / steps)
    return float(np.median(samples)), samples


def time_peers(w: dict[str, Any], d: ModelDims, start_pos: int, steps: int, repeats: int = 5,
               compile_too: bool = True) -> dict[str, Any]:
    """us per token of the PyTorch step eager, CUDA-graphed and torch.compile(mode="reduce-overhead"), greedy
    decoding of `steps` tokens from `start_pos` with a random-filled cache (the token fed back on the GPU)."""
    import time

    import torch

    out: dict[str, Any] = {}
    model = make_step(w, d)
    gen = torch.Generator(device="cuda").manual_seed(1)
    model.k.copy_(torch.randn(model.k.shape, generator=gen, device="cuda").to(model.k.dtype))
    model.v.copy_(torch.randn(model.v.shape, generator=gen, device="cuda").to(model.v.dtype))
    tok = torch.tensor(1, device="cuda")
    pos = torch.tensor(start_pos, device="cuda")
    position = [torch.tensor(start_pos + i, device="cuda") for i in range(steps)]

    def body():
        _, nxt = model(tok, pos)
        tok.copy_(nxt)
        pos.add_(1)

    def reset():
        tok.fill_(1)
        pos.fill_(start_pos)

    with torch.no_grad():
        def eager():
            reset()
            for _ in range(steps):
                body()

        out["torch_eager_us"], out["torch_eager_samples"] = _timed(eager, steps, max(2, repeats // 2))
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                reset()
                body()
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        reset()
        with torch.cuda.graph(graph):
            body()

        def graphed():
            reset()
            for _ in range(steps):
                graph.replay()

        out["cuda_graph_us"], out["cuda_graph_samples"] = _timed(graphed, steps, repeats)
        graph.reset()
        if compile_too:
            compiled = torch.compile(model, mode="reduce-overhead", fullgraph=True)

            def run_compiled():
                t = torch.tensor(1, device="cuda")
                for i in range(steps):
                    torch.compiler.cudagraph_mark_step_begin()
                    _, nxt = compiled(t, position[i])
                    t = nxt.clone()

            t0 = time.perf_counter()
            for _ in range(3):
                run_compiled()
            torch.cuda.synchronize()
            out["torch_compile_warmup_s"] = time.perf_counter() - t0
            out["torch_compile_us"], out["torch_compile_samples"] = _timed(run_compiled, steps, repeats)
    return out


def to_transformers(w: dict[str, Any], d: ModelDims, dtype: Any) -> Any:
    """A transformers LlamaForCausalLM on the GPU holding these weights (cast to `dtype`)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    rope = {"rope_type": "default", "rope_theta": d.rope_theta}
    if d.rope_scaling:
        factor, low, high, original = d.rope_scaling
        rope = {"rope_type": "llama3", "rope_theta": d.rope_theta, "factor": factor, "low_freq_factor": low,
                "high_freq_factor": high, "original_max_position_embeddings": int(original)}
    config = LlamaConfig(hidden_size=d.hidden, intermediate_size=d.intermediate, num_hidden_layers=d.layers,
                         num_attention_heads=d.heads, num_key_value_heads=d.kv_heads, head_dim=d.head_dim,
                         vocab_size=d.vocab, max_position_embeddings=max(d.max_positions, 8192 + 1),
                         rms_norm_eps=d.eps, rope_parameters=rope, tie_word_embeddings=d.tied,
                         attention_bias=False, mlp_bias=False)
    with torch.device("cuda"):
        model = LlamaForCausalLM(config).to(dtype).eval()
    v = views(w, d)
    Q, KV, inter = d.heads * d.head_dim, d.kv_heads * d.head_dim, d.intermediate
    sd = {"model.embed_tokens.weight": v["embed"], "model.norm.weight": v["final_norm"]}
    if not d.tied:
        sd["lm_head.weight"] = v["lm_head"]
    for layer in range(d.layers):
        p = f"model.layers.{layer}."
        sd.update({p + "input_layernorm.weight": v["attn_norm"][layer], p + "post_attention_layernorm.weight": v["mlp_norm"][layer],
                   p + "self_attn.q_proj.weight": v["qkv"][layer][:Q], p + "self_attn.k_proj.weight": v["qkv"][layer][Q:Q + KV],
                   p + "self_attn.v_proj.weight": v["qkv"][layer][Q + KV:], p + "self_attn.o_proj.weight": v["o"][layer],
                   p + "mlp.gate_proj.weight": v["gate_up"][layer][:inter], p + "mlp.up_proj.weight": v["gate_up"][layer][inter:],
                   p + "mlp.down_proj.weight": v["down"][layer]})
    missing, unexpected = model.load_state_dict({k: t.to(dtype) for k, t in sd.items()}, strict=False)
    assert not unexpected and all("lm_head" in m for m in missing), (missing, unexpected)
    if d.tied:
        model.tie_weights()
    return model


def hf_greedy(model: Any, prompt: list[int], new_tokens: int) -> tuple[list[int], Any]:
    """transformers' greedy generate, and the logits of each generated step (float32, on the GPU)."""
    import torch

    with torch.no_grad():
        out = model.generate(torch.tensor([prompt], device="cuda"), max_new_tokens=new_tokens,
                             min_new_tokens=new_tokens, do_sample=False, output_logits=True, return_dict_in_generate=True)
    return out.sequences[0].tolist(), torch.stack([x[0].float() for x in out.logits])
