"""The emitted CUDA megakernel: refuses unsafe schedules (CPU), and on a GPU matches transformers token-for-token."""

from dataclasses import replace

import numpy as np
import pytest

from search.protocols import UserError
from spaces.megakernel.emit_cuda import emit_cuda
from spaces.megakernel.lower import SYNC_MODES, LlamaShape, ModelDims, Tiling, lower

CFG = LlamaShape(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=64, max_position_embeddings=12)


def test_emit_bakes_in_every_step_and_refuses_rejected_schedules():
    s = lower(CFG, Tiling(rows=16, heads=1, workers=4), "tile")
    src = emit_cuda(s)
    assert "megakernel(float* M, int* counters, int* barrier, int token, int pos)" in src
    assert src.count("{0, ") >= len(s.tasks)  # one run step per task
    racy = replace(s, programs=tuple(tuple(st for st in p if st.kind != "wait") for p in s.programs))
    with pytest.raises(UserError, match="validator rejects"):
        emit_cuda(racy)


def _nvrtc_compile(source: str) -> tuple[int, str]:
    """Compile CUDA C++ for sm_90 with NVRTC (no GPU needed); (status, log)."""
    import ctypes
    from pathlib import Path

    nvrtc = pytest.importorskip("nvidia.cuda_nvrtc")
    libs = sorted(Path(next(iter(nvrtc.__path__))).glob("lib/libnvrtc.so*"))
    if not libs:
        pytest.skip("nvidia-cuda-nvrtc-cu12 has no libnvrtc here")
    lib = ctypes.CDLL(str(libs[0]))
    prog = ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), b"megakernel.cu", 0, None, None) == 0
    opts = (ctypes.c_char_p * 2)(b"--gpu-architecture=compute_90", b"--std=c++17")
    status = lib.nvrtcCompileProgram(prog, 2, opts)
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, log)
    lib.nvrtcDestroyProgram(ctypes.byref(prog))
    return status, log.value.decode(errors="replace")


@pytest.mark.parametrize("fuse", [False, True])
@pytest.mark.parametrize("sync", SYNC_MODES)
def test_emitted_kernel_compiles_for_hopper(sync, fuse):
    status, log = _nvrtc_compile(emit_cuda(lower(CFG, Tiling(rows=16, heads=1, workers=6), sync, fuse)))
    assert status == 0, log


@pytest.mark.gpu
@pytest.mark.parametrize("fuse", [False, True])
@pytest.mark.parametrize("sync", SYNC_MODES)
def test_megakernel_greedy_decode_matches_transformers(sync, fuse):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    pytest.importorskip("cupy")
    pytest.importorskip("transformers")
    from spaces.megakernel.gpu_bench import Megakernel
    from spaces.megakernel.model import random_weights, to_transformers

    d = ModelDims.of(CFG)
    w = random_weights(d, np.random.default_rng(3))
    hf = to_transformers(w, d).cuda()
    prompt = [5, 9, 1]
    with torch.no_grad():
        ref = hf.generate(torch.tensor([prompt], device="cuda"), max_new_tokens=8, min_new_tokens=8, do_sample=False)[0].tolist()
    mk = Megakernel(lower(CFG, Tiling(rows=16, heads=1, workers=6), sync, fuse), w)
    tokens = list(prompt)
    for pos in range(len(ref) - 1):
        logits = mk.step(tokens[pos], pos)
        if pos >= len(prompt) - 1:
            tokens.append(int(logits.argmax()))
    assert tokens == ref


def test_torch_baseline_step_matches_the_reference_on_cpu():
    torch = pytest.importorskip("torch")
    from spaces.megakernel.gpu_bench import torch_step_fn
    from spaces.megakernel.model import new_cache, random_weights, reference_step

    d = ModelDims.of(CFG)
    w = random_weights(d, np.random.default_rng(4))
    step, cache = torch_step_fn(w, d, device="cpu"), new_cache(d)
    for pos, tok in enumerate([3, 8, 60, 2]):
        got = step(torch.tensor(tok), torch.tensor(pos)).numpy()
        assert np.abs(got - reference_step(w, d, tok, pos, cache)).max() <= 1e-4
