"""Straight-line float32 register programs, and their evaluation exactly as float32 hardware computes them.

A program is a tuple of instructions `(op, args)`. Registers `0 .. n_inputs-1` hold the (range-reduced) inputs
(one for most targets; erf gets three shifted copies of |x|); instruction `i` writes register `n_inputs + i`. An argument `>= 0` names a register defined earlier; `CONST` (-1) names a fresh constant slot whose
value is fitted (constants are numbered in order of appearance). The last `n_outputs` instructions are the outputs.

Evaluation semantics (`evaluate_f32`): every operation is IEEE-754 binary32, round-to-nearest-even, subnormals kept
(numpy never flushes them), and `fma` rounded once (see `fma_f32`). `evaluate_f64` is the same program over float64
reals, used only by the constant fitter.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

CONST = -1
ARITY = {"add": 2, "sub": 2, "mul": 2, "div": 2, "fma": 3}
OPS = tuple(ARITY)

Instruction = tuple[str, tuple[int, ...]]
Program = tuple[Instruction, ...]


def fma_f32(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """fma(a, b, c) = RN32(a*b + c) with a single rounding, bit-exact, for float32 arrays.

    Why this is exact: a*b of two binary32 values has at most 48 significant bits and its exponent stays inside the
    binary64 normal range (|a*b| in [2^-298, 2^256]), so `p = a*b` is exact in float64. `s = RN64(p + c)` can still
    be wrong for float32 through double rounding (e.g. p + c = 1 + 2^-24 + 2^-80: RN64 drops 2^-80, then the tie goes
    to even = 1, but the true result rounds up). TwoSum gives the exact error `e = (p + c) - s` (no overflow is
    possible at these magnitudes). We then replace `s` by its round-to-odd value: when `e != 0` and the last bit of
    `s` is even, step one binary64 ulp towards `e`. Rounding to odd at 53 bits followed by rounding to nearest at 24
    bits equals a direct rounding to nearest at 24 bits because 53 >= 24 + 2 (Boldo & Melquiond, "Emulation of FMA
    and correctly rounded sums: proved algorithms using rounding to odd", IEEE TC 2008).
    """
    a64 = np.asarray(a, np.float32).astype(np.float64)
    b64 = np.asarray(b, np.float32).astype(np.float64)
    c64 = np.asarray(c, np.float32).astype(np.float64)
    with np.errstate(all="ignore"):
        p = a64 * b64
        s = p + c64
        bb = s - p                       # TwoSum (Knuth): e = (p - (s - bb)) + (c - bb)
        e = (p - (s - bb)) + (c64 - bb)
        bits = s.view(np.uint64)
        need = (e != 0) & np.isfinite(e) & ((bits & np.uint64(1)) == 0)
        if np.any(need):
            toward = np.where(e > 0, np.inf, -np.inf)
            s = np.where(need, np.nextafter(s, toward), s)
        return s.astype(np.float32)


def n_constants(program: Program) -> int:
    return sum(1 for _, args in program for a in args if a == CONST)


def live_instructions(program: Program, n_outputs: int, n_inputs: int = 1) -> list[int]:
    """Indices of instructions that contribute to an output (the rest is dead code, free to drop)."""
    n = len(program)
    needed = [False] * (n + n_inputs)
    for i in range(n - n_outputs, n):
        needed[i + n_inputs] = True
    for i in range(n - 1, -1, -1):
        if needed[i + n_inputs]:
            for a in program[i][1]:
                if a >= 0:
                    needed[a] = True
    return [i for i in range(n) if needed[i + n_inputs]]


def canonical(program: Program, n_outputs: int, n_inputs: int = 1) -> Program:
    """The program without dead code, registers renumbered: two genomes with equal canonical forms compute the same."""
    keep = live_instructions(program, n_outputs, n_inputs)
    remap = {i: i for i in range(n_inputs)}
    out: list[Instruction] = []
    for new_index, i in enumerate(keep):
        op, args = program[i]
        out.append((op, tuple(a if a < 0 else remap[a] for a in args)))
        remap[i + n_inputs] = new_index + n_inputs
    return tuple(out)


def op_count(program: Program, n_outputs: int, n_inputs: int = 1) -> int:
    """Arithmetic operations that execute (fma counts as one, as on hardware with an fma unit)."""
    return len(live_instructions(program, n_outputs, n_inputs))


def depth(program: Program, n_inputs: int = 1) -> int:
    """Longest chain of dependent operations (inputs at 0): what bounds throughput once the out-of-order window is
    full, where the op count does not (Estrin has more operations than Horner and a shorter chain)."""
    level = [0] * n_inputs
    for _, args in program:
        level.append(1 + max((level[a] for a in args if a != CONST), default=0))
    return max(level[n_inputs:], default=0)


def _run(program: Program, constants: Sequence[float], inputs: list[np.ndarray], n_outputs: int,
         dtype) -> list[np.ndarray]:
    n_in = len(inputs)
    regs: list[np.ndarray | None] = list(inputs) + [None] * len(program)
    live = _live_set(program, n_outputs, n_in)
    consts = iter(constants if isinstance(constants, list) else np.asarray(constants, dtype))
    for i, (op, args) in enumerate(program):
        vals = [next(consts) if a == CONST else regs[a] for a in args]
        if i not in live:
            continue
        if op == "add":
            out = vals[0] + vals[1]
        elif op == "sub":
            out = vals[0] - vals[1]
        elif op == "mul":
            out = vals[0] * vals[1]
        elif op == "div":
            out = vals[0] / vals[1]
        elif op == "fma":
            if dtype is np.float32:
                out = fma_f32(*vals)
            else:
                out = vals[0] * vals[1] + vals[2]
        else:
            raise ValueError(f"unknown op {op!r}")
        regs[i + n_in] = out
    shape = np.broadcast_shapes(*[np.shape(v) for v in inputs])
    return [np.broadcast_to(np.asarray(regs[i + n_in], dtype), shape) if np.ndim(regs[i + n_in]) == 0
            else regs[i + n_in] for i in range(len(program) - n_outputs, len(program))]


@lru_cache(maxsize=65536)
def _live_set(program: Program, n_outputs: int, n_inputs: int) -> frozenset[int]:
    return frozenset(live_instructions(program, n_outputs, n_inputs))


def _inputs(r, dtype) -> list[np.ndarray]:
    return [np.asarray(v, dtype) for v in (r if isinstance(r, (list, tuple)) else [r])]


def evaluate_f32(program: Program, constants: Sequence[float], r, n_outputs: int = 1) -> list[np.ndarray]:
    """The outputs as float32 hardware computes them (constants are rounded to float32 first).
    `r` is the input array, or a list of them when the target has several inputs."""
    with np.errstate(all="ignore"):
        return _run(program, np.asarray(constants, np.float64).astype(np.float32), _inputs(r, np.float32),
                    n_outputs, np.float32)


def evaluate_f64(program: Program, constants: Sequence[float], r, n_outputs: int = 1) -> list[np.ndarray]:
    """The outputs over float64 (for fitting constants; rounding effects are handled later by the refinement).
    `constants` may be a list of arrays (e.g. columns of shape (k, 1)) to evaluate k constant vectors at once."""
    with np.errstate(all="ignore"):
        consts = constants if isinstance(constants, list) else np.asarray(constants, np.float64)
        return _run(program, consts, _inputs(r, np.float64), n_outputs, np.float64)


def register_name(a: int, n_inputs: int = 1) -> str:
    """Source name of register `a`: the inputs are r (and r1, r2, ...), instruction results v1, v2, ..."""
    if a < n_inputs:
        return "r" if a == 0 else f"r{a}"
    return f"v{a - n_inputs + 1}"


def render(program: Program, constants: Sequence[float] | None = None, n_inputs: int = 1) -> str:
    """One line per instruction, e.g. `v1 = fma(r, 0x1.000002p-1, 1.0)`, for logs and reports."""
    consts = iter([] if constants is None else constants)
    lines = []
    for i, (op, args) in enumerate(program):
        names = []
        for a in args:
            if a == CONST:
                c = next(consts, None)
                names.append("c" if c is None else float(np.float32(c)).hex())
            else:
                names.append(register_name(a, n_inputs))
        lines.append(f"v{i + 1} = {op}({', '.join(names)})")
    return "; ".join(lines)
