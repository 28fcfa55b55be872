"""The streaming-megakernel space's certifier: the validator's verdict on the very schedule the kernel runs, the
same genes lowered for a tiny config and checked against ground truth (every interleaving explored; real CPU
threads computing the forward pass), and the artifact being exactly what evoforge emits for those genes.

The schedule is rebuilt from the model's architecture, SM count, KV length and genes recorded in the certificate,
so `evoforge verify` needs neither the run directory nor the config file.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from runs.certificate import Check, Outcome, run_check
from spaces.megakernel.lower import LlamaShape, ModelDims, rope_inv_freq
from spaces.megakernel.stream import KernelGenes, stream_schedule, stream_weights

TINY = LlamaShape(hidden_size=16, intermediate_size=24, num_hidden_layers=2, num_attention_heads=2,
                  num_key_value_heads=1, vocab_size=24, max_position_embeddings=4)
TOLERANCE = 1e-4


def _model(params: dict[str, Any]) -> LlamaShape:
    fields = dict(params["model"])
    fields["rope_scaling"] = tuple(tuple(pair) for pair in fields.get("rope_scaling", ()))
    return LlamaShape(**fields)


def validator(artifact: Path, params: dict[str, Any]) -> Outcome:
    from objectives.schedule_validator import validate

    s = stream_schedule(_model(params), KernelGenes(**params["genes"]), sms=int(params["sms"]),
                        kv_length=int(params["kv_length"]))
    verdict = validate(s)
    detail = "ACCEPT: deadlock- and race-free" if verdict.accepted else verdict.report(limit=3).replace("\n", "; ")
    return Outcome(verdict.accepted, {"accepted": verdict.accepted, "tasks": len(s.tasks), "workers": s.workers},
                   f"{detail} ({len(s.tasks)} tasks on {s.workers} workers)")


def small_config(artifact: Path, params: dict[str, Any]) -> Outcome:
    """The genes lowered for a tiny Llama on 2 SMs: the explorer finds no unsafe interleaving and real threads
    compute the op-by-op forward pass within TOLERANCE."""
    from spaces.megakernel.executor import Memory, execute
    from spaces.megakernel.explorer import StateLimit, explore
    from spaces.megakernel.model import new_cache, random_weights, reference_step

    genes = KernelGenes(**params["genes"])
    s = stream_schedule(TINY, genes, sms=2, kv_length=TINY.max_position_embeddings)
    try:
        states = explore(s, max_states=int(params["max_states"]))
    except StateLimit:
        states = None
    d = ModelDims.of(TINY, TINY.max_position_embeddings)
    w = random_weights(d, np.random.default_rng(int(params["seed"])))
    w["w_rope_inv"] = rope_inv_freq(d)
    mem, cache, worst = Memory.allocate(s, stream_weights(w, d, genes)), new_cache(d), 0.0
    for pos, token in enumerate(params["tokens"]):
        worst = max(worst, float(np.abs(execute(s, mem, d, int(token), pos) - reference_step(w, d, int(token), pos, cache)).max()))
    safe = states is None or not states.unsafe
    passed = safe and worst <= TOLERANCE
    explored = "not enumerable within the budget" if states is None else f"{states.states} states, " + (
        "safe" if safe else "UNSAFE")
    return Outcome(passed, {"explorer_states": None if states is None else states.states, "explorer_safe": safe,
                            "max_abs_error": worst},
                   f"tiny config with these genes: {explored}; threads vs forward pass max |error| {worst:.2g}")


def source(artifact: Path, params: dict[str, Any]) -> Outcome:
    """The file is exactly what evoforge emits for the certified genes (CUDA kernel or Python launcher)."""
    from spaces.megakernel.emit_stream import emit_stream_cuda
    from spaces.megakernel.launcher import launcher_source

    genes = KernelGenes(**params["genes"])
    if params["lang"] == "cuda":
        expected = emit_stream_cuda(ModelDims.of(_model(params), int(params["kv_length"])), genes, params["dtype"])
    else:
        expected = launcher_source(genes, params["dtype"], params["model_config"])
    same = artifact.read_text() == expected
    return Outcome(same, {"chars": len(expected)}, f"the {params['lang']} file is what evoforge emits for these genes"
                   if same else f"the {params['lang']} file differs from what evoforge emits for these genes")


def certify(space, genome, lang: str, source_text: str, artifact: Path) -> list[Check]:
    rng = np.random.default_rng(space.context.seed)
    base = {"model": asdict(space.model), "genes": genome.as_dict(), "sms": space.config.sms,
            "kv_length": space.config.kv_length}
    checks = [run_check("megakernel_stream.validator", "the kernel's schedule is deadlock- and race-free",
                        "the static validator on the schedule rebuilt from the recorded architecture and genes", base,
                        artifact),
              run_check("megakernel_stream.small_config", "these genes lower to a correct schedule",
                        "a tiny Llama lowered with the same genes: explicit-state exploration and CPU threads "
                        "against the forward pass", {"genes": genome.as_dict(), "seed": space.context.seed,
                                                     "max_states": 20_000,
                                                     "tokens": [int(t) for t in rng.integers(TINY.vocab_size, size=3)]},
                        artifact)]
    if lang in ("cuda", "python"):
        checks.append(run_check("megakernel_stream.source", f"the {lang} file is the certified kernel's",
                                "the emitter's output for the recorded genes compared with the file",
                                {**base, "lang": lang, "dtype": space.config.dtype,
                                 "model_config": space.config.model_config}, artifact))
    return checks
