"""int8 storage of a student's weight matrices: one symmetric scale per row, as model2vec stores its tables.

Half a float16 file's bytes per weight, so a size limit holds twice the parameters (the `int8` gene of
shapes.Shape). Every 2-D tensor (embedding tables, attention and feed-forward matrices, the projection) is stored
as int8 rows plus a scale per row in the saved dtype; vectors (biases, LayerNorm) stay in the saved dtype. The
fidelity of a quantised student is always measured on the rounded weights: `fake_quantise_` rounds a model's
matrices in place to what the file will hold.
"""

from __future__ import annotations

import numpy as np

SCALE_SUFFIX = "_scale"


def quantise_rows(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(int8 table, per-row scale): row r is approximately q[r] * scale[r], symmetric, max |q| = 127."""
    scale = np.abs(table).max(axis=1) / 127.0
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    return np.clip(np.rint(table / scale[:, None]), -127, 127).astype(np.int8), scale


def dequantise_rows(q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return q.astype(np.float32) * scale.astype(np.float32)[:, None]


def quantise_state(state: dict, np_dtype) -> dict[str, np.ndarray]:
    """A state dict (name -> tensor) as the arrays an int8 file holds: each matrix as int8 + `name_scale`, the
    scales rounded to `np_dtype` (what the file stores), every other tensor in `np_dtype`."""
    out: dict[str, np.ndarray] = {}
    for name, tensor in state.items():
        array = tensor.detach().float().cpu().numpy()
        if array.ndim == 2:
            q, scale = quantise_rows(array)
            out[name], out[name + SCALE_SUFFIX] = q, scale.astype(np_dtype)
        else:
            out[name] = array.astype(np_dtype)
    return out


def dequantise_state(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The inverse of `quantise_state`: float32 arrays by the model's own tensor names."""
    out = {}
    for name, array in arrays.items():
        if name.endswith(SCALE_SUFFIX):
            continue
        scale = arrays.get(name + SCALE_SUFFIX)
        out[name] = dequantise_rows(array, scale) if scale is not None else array.astype(np.float32)
    return out


def fake_quantise_(module, np_dtype=np.float16) -> None:
    """Round `module`'s matrices in place to their int8 + per-row-scale values (and vectors to `np_dtype`), so an
    in-memory student scores what its int8 file will."""
    import torch

    arrays = dequantise_state(quantise_state(module.state_dict(), np_dtype))
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            tensor.copy_(torch.as_tensor(arrays[name], dtype=tensor.dtype))
