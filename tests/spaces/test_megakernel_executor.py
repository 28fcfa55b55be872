"""The CPU executor: real threads reproduce the plain forward pass for every validated lowering, and a schedule the
validator rejects for a race really computes garbage under an adversarial thread order."""

from dataclasses import replace

import numpy as np
import pytest

from objectives.schedule_validator import validate
from spaces.megakernel.executor import ExecutionHang, Memory, execute
from spaces.megakernel.lower import SYNC_MODES, LlamaShape, ModelDims, Tiling, lower
from spaces.megakernel.model import greedy_decode, new_cache, random_weights, reference_step, to_transformers

CFG = LlamaShape(hidden_size=24, intermediate_size=40, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=32, max_position_embeddings=6)
DIMS = ModelDims.of(CFG)
WEIGHTS = random_weights(DIMS, np.random.default_rng(7))
TOKENS = [3, 17, 5, 9]


def _max_error(schedule, delays=None):
    mem, cache, err = Memory.allocate(schedule, WEIGHTS), new_cache(DIMS), 0.0
    for pos, tok in enumerate(TOKENS):
        got = execute(schedule, mem, DIMS, tok, pos, delays)
        err = max(err, float(np.nan_to_num(np.abs(got - reference_step(WEIGHTS, DIMS, tok, pos, cache)), nan=np.inf).max()))
    return err


@pytest.mark.parametrize("fuse", [False, True])
@pytest.mark.parametrize("sync", SYNC_MODES)
@pytest.mark.parametrize("tiling", [Tiling(rows=8, heads=1, workers=3), Tiling(rows=16, heads=2, workers=4)])
def test_validated_lowerings_match_the_reference(sync, tiling, fuse):
    s = lower(CFG, tiling, sync, fuse)
    assert validate(s).accepted
    assert _max_error(s) <= 1e-4


def test_reference_matches_transformers_greedy_decode():
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    model = to_transformers(WEIGHTS, DIMS)
    with torch.no_grad():
        hf = model(torch.tensor([TOKENS])).logits[0].numpy()
        hf_tokens = model.generate(torch.tensor([TOKENS[:2]]), max_new_tokens=3, min_new_tokens=3, do_sample=False)
    cache = new_cache(DIMS)
    ours = np.stack([reference_step(WEIGHTS, DIMS, t, p, cache) for p, t in enumerate(TOKENS)])
    assert np.abs(hf - ours).max() <= 1e-4
    cache = new_cache(DIMS)
    assert greedy_decode(lambda t, p: reference_step(WEIGHTS, DIMS, t, p, cache), TOKENS[:2], 3) == hf_tokens[0].tolist()


def test_rejected_race_gives_a_wrong_answer_under_an_adversarial_order():
    s = lower(CFG, Tiling(rows=8, heads=1, workers=3), "tile")
    names = [t.name for t in s.tasks]
    consumer = names.index("L0.o_proj[8:16]")
    w, i = next((w, i) for w, p in enumerate(s.programs) for i, st in enumerate(p) if st.kind == "run" and st.task == consumer)
    assert s.programs[w][i - 1].kind == "wait"
    racy = replace(s, programs=s.programs[:w] + (s.programs[w][: i - 1] + s.programs[w][i:],) + s.programs[w + 1:])
    verdict = validate(racy)
    assert any(r.rule == "race" and "L0.o_proj[8:16]" in r.tasks for r in verdict.rejections)
    producers = [t.name for t in s.tasks if t.op == "attention" and t.param("layer") == 0]
    assert _max_error(racy, delays={p: 0.05 for p in producers}) > 1e-2


def test_deadlocking_schedule_times_out_instead_of_hanging():
    s = lower(CFG, Tiling(rows=16, heads=2, workers=2), "tile")
    w, i = next((w, i) for w, p in enumerate(s.programs) for i, st in enumerate(p) if st.kind == "signal")
    stuck = replace(s, programs=s.programs[:w] + (s.programs[w][:i] + s.programs[w][i + 1:],) + s.programs[w + 1:])
    assert "deadlock" in validate(stuck).rules
    with pytest.raises(ExecutionHang):
        execute(stuck, Memory.allocate(stuck, WEIGHTS), DIMS, 1, 0, timeout=0.5)
