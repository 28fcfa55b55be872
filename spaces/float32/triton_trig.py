"""Triton source for the sin/cos harness (`reduction.Sin`): the float32 Cody-Waite fast path on every lane and,
only in a block where some lane has |x| >= 120 (a uniform branch), the Payne-Hanek slow path on the block, then
selected per lane (a GPU has no scalar side loop). A block of ordinary arguments skips the 64-bit products and the
table's select chains, which cost more than the rest of the function. The same operations in the same order as the
simulation and the C, so the results are bit-exact when the kernel is compiled without fp fusion.

Payne-Hanek needs 64-bit unsigned products and the 2/pi table; the table is indexed by select chains (16 entries
per lookup), since a device function cannot hold a global array."""

from __future__ import annotations

from spaces.float32 import reduction as R


def _f(v) -> str:
    return repr(float(v))


def _lookup(var: str, index: str, offset: int) -> list[str]:
    """`var` = INV_PIO4_TABLE[index + offset] as uint64, for index in 0..15."""
    expr = f"{int(R.INV_PIO4_TABLE[offset + 15])}"
    for i in range(14, -1, -1):
        expr = f"tl.where({index} == {i}, {int(R.INV_PIO4_TABLE[offset + i])}, {expr})"
    return [f"        {var} = ({expr}).to(tl.uint64)"]


def triton_lines(target: R.Target, body: list[str], outs: list[str]) -> list[str]:
    """Lines after `x = x.to(tl.float32)`; `body` computes the program's outputs `outs` (P, Q) from `r`."""
    lines = [
        "    ax = tl.abs(x)",
        f"    sh = tl.fma(ax, {_f(R.INV_PIO2_F)}, 12582912.0)",
        "    kf = sh - 12582912.0",
        "    n_fast = sh.to(tl.int32, bitcast=True) - 0x4B400000",
        f"    r1 = tl.fma(-kf, {_f(R.PIO2_C1)}, ax)",
        f"    rh_fast = tl.fma(-kf, {_f(R.PIO2_C2)}, r1)",
        f"    rl_fast = tl.fma(-kf, {_f(R.PIO2_C3)}, tl.fma(-kf, {_f(R.PIO2_C2)}, r1 - rh_fast))",
        f"    large = ~(ax < {_f(R.LARGE)})",
        "    rh = rh_fast",
        "    rl = rl_fast",
        "    n = n_fast",
        # Payne-Hanek on the whole block when any lane needs it (garbage but harmless where |x| < 120; 1000 stands
        # in for inf and NaN)
        "    if tl.max(large.to(tl.int32)) > 0:",
        "        axl = tl.where(large & (ax == ax) & (ax != float('inf')), ax, 1000.0)",
        "        xi = axl.to(tl.int32, bitcast=True).to(tl.uint32)",
        "        idx = ((xi >> 26) & 15).to(tl.int32)",
        "        shift = ((xi >> 23) & 7).to(tl.uint32)",
        "        m = ((xi & 0xFFFFFF) | 0x800000) << shift",
    ]
    lines += _lookup("a0", "idx", 0) + _lookup("a4", "idx", 4) + _lookup("a8", "idx", 8)
    lines += [
        "        m64 = m.to(tl.uint64)",
        "        res0 = (m64 * a0) & 0xFFFFFFFF",
        "        res1 = m64 * a4",
        "        res2 = m64 * a8",
        "        res0 = (res2 >> 32) | (res0 << 32)",
        "        res0 = res0 + res1",
        "        n_big = (res0 + (1 << 61)) >> 62",
        "        res0 = res0 - (n_big << 62)",
        f"        r_big = res0.to(tl.int64, bitcast=True).to(tl.float64) * {R.PI63!r}",
        "        n_big = n_big.to(tl.int32)",
        "        rbh = r_big.to(tl.float32)",
        "        rh = tl.where(large, rbh, rh_fast)",
        "        rl = tl.where(large, (r_big - rbh.to(tl.float64)).to(tl.float32), rl_fast)",
        "        n = tl.where(large, n_big, n_fast)",
        "    r = rh",
    ]
    lines += body
    lines += [
        f"    p = {outs[0]}",
        f"    q2 = {outs[1]}",
        "    z = rh * rh",
        "    z2 = z * z",
        "    r3 = rh * z",
        "    t = rh * rl",
        "    hr = 0.5 * rh",
        "    c_val = 1.0 - tl.fma(rh, hr, tl.fma(-z2, q2, t))",
        "    s_val = rh + tl.fma(r3, p, tl.fma(-t, hr, rl))",
        f"    q = (n + {target.quadrant_shift}) & 3",
        "    y = tl.where((q & 1) == 0, s_val, c_val)",
    ]
    # the sign goes on as an integer xor, as in the C code: a float select of -y was compiled on the GPU into a
    # form that turned sin(-0.0) into +0.0 (2 bit mismatches of 1,051,248 against the CPU simulation)
    flip = "((q >> 1) & 1).to(tl.uint32)"
    if target.odd:
        flip += " ^ (x.to(tl.uint32, bitcast=True) >> 31)"
    lines += [
        f"    y = (y.to(tl.uint32, bitcast=True) ^ (({flip}) << 31)).to(tl.float32, bitcast=True)",
        "    return tl.where(ax <= 3.4028234663852886e+38, y, float('nan'))",
    ]
    return lines
