"""Fixed range reductions: how each target function maps a float32 `x` to a small interval, and back.

The evolved program only ever sees the reduced argument; everything here is fixed, documented and mirrored exactly
by the C and NumPy emitters (`emit.py`), so the error measured on this simulation is the error of the emitted code.

- exp:   k = rint(x log2 e); r = x - k ln2 with a two-constant Cody-Waite split (LN2_HI has 9 significant bits,
         so k*LN2_HI is exact for |k| <= 2^15 and `fma(-k, LN2_HI, x)` is exact; one rounding in `fma(-k, LN2_LO, .)`);
         r in [-0.347, 0.347]; exp(x) = p(r) * 2^k1 * 2^k2 (k = k1 + k2: the first product is exact, the second rounds
         once, so subnormal results and overflow to inf come out correctly rounded from p).
- exp2:  k = rint(x); r = x - k exactly; r in [-1/2, 1/2]; exp2(x) = p(r) * 2^k1 * 2^k2.
- log:   x = 2^e m with m in [sqrt(1/2), sqrt(2)) by integer arithmetic on the bits (subnormals scaled by 2^23 first);
         f = m - 1 is exact (Sterbenz); log(x) = fma(e, LN2_HI, fma(e, LN2_LO, p(f))), p ~ log1p on [-0.293, 0.415].
- log2:  same split; p ~ g(f) = log2(1 + f)/f - INVLN2_HI (1/ln 2 rounded to float32: p's constant term carries
         the 1.9e-8 that INVLN2_HI misses), and log2(x) = e + v with v = fma(f, INVLN2_HI, f p) ~ log2(1 + f)
         (3 ops): |f p| <= 0.15 |v|, so the roundings of p and f p are <= 0.15 ULP of v each; for e != 0,
         |y| >= 1/2 while |v| <= 1/2, so v's rounding is <= 1/4 ULP of the result and the sum rounds once more;
         for e = 0, y = v.
- sin/cos: on a = |x| (sin(-x) = -sin x: the sign of x is put back at the end as a bit; cos is even).
         a < 120 (the vectorised fast path, float32 only, 7 ops): k = rint(a 2/pi) (one fma); a - k pi/2 as a double-float
         (rh, rl) by a three-part Cody-Waite split pi/2 = PIO2_C1 + PIO2_C2 + PIO2_C3 + 1.2e-18 where C1 and C2
         have 17 significant bits: k C1 is exact (k <= 77) and so is r1 = a - k C1 (a multiple of 2^-24 below 1);
         rh = fma(-k, C2, r1) rounds once, and r1 - rh is exact (either rh is exact, and then r1 - rh = k C2 has
         <= 24 bits, or |rh| >= 2^-10 > |k C2| / 2), so fma(-k, C2, r1 - rh) is rh's rounding error exactly;
         k C3 is added to that tail with one rounding. (rh, rl) is not renormalised: rl only enters first-order
         terms. The split's own error (k 1.2e-18) and the tail's rounding keep rh + rl within 2^-29 of a - k pi/2,
         relatively, for every float32 a < 120 (the closest to a multiple of pi/2 is 1.19e-8 away). a >= 120, inf, NaN (the scalar slow path): Payne-Hanek in
         integers with 2/pi bits (the scheme of glibc's sinf, table generated from mpmath), r in binary64,
         rh = (float)r, rl = (float)(r - rh); inf and NaN give NaN. The program maps rh to P(z) ~ (sin(rh) - rh)/rh^3
         and Q(z) ~ (cos(rh) - 1 + rh^2/2)/rh^4 on [-pi/4, pi/4] (z = rh^2; the harness applies the r^3 and z^2 factors
         inside its own fmas, so the program is the two polynomials). Per lane only the value its quadrant q = k mod 4
         needs is kept (a blend on q's parity): cos(r) = 1 - D with D = fma(rh, rh/2, fma(-z^2, Q, rh rl)), the exact
         1 - cos(r) rounded once (D <= 0.293, so its rounding is <= 1/4 ULP of the result), and
         sin(r) = rh + fma(rh z, P, fma(-rh rl, rh/2, rl)) (rl cos(rh) to within rl rh^4/24; not waiting for cos(r)
         keeps the chain short); negated when q & 2, and for sin when x < 0. sin(+-0) = +-0 and subnormals come out
         exact (rh = x, rh z underflows).
Special cases, all targets: NaN -> NaN. exp: x > 89 acts as 89 (-> +inf), x < -104 acts as -104 (-> +0).
exp2: clamp to [-151, 129]. log/log2: x < 0 -> NaN, +-0 -> -inf, +inf -> +inf. sin/cos: +-inf -> NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from spaces.float32.program import Program, evaluate_f32, fma_f32

F32 = np.float32
MAGIC32 = F32(12582912.0)          # 0x1.8p23: (t + MAGIC) - MAGIC = rint(t) for |t| < 2^22; low bits hold k
MAGIC64 = 6755399441055744.0       # 0x1.8p52, the same in binary64
LOG2E = F32(1.4426950408889634)
LN2_HI = F32(0.693359375)          # 0x1.63p-1: 9 significant bits
LN2_LO = F32(0.6931471805599453 - 0.693359375)
LN2_F = F32(0.6931471805599453)    # log: hi part = nearest float32 to ln 2
LN2_F_LO = F32(0.6931471805599453 - float(LN2_F))
SQRT_HALF_BITS = 0x3F3504F3        # float32 bits of sqrt(1/2)
INVLN2 = 1.4426950408889634
INVLN2_HI = F32(INVLN2)
PI63 = float.fromhex("0x1.921fb54442d18p-62")              # pi / 2^63
INV_PIO2_F = F32(float.fromhex("0x1.45f306p-1"))             # 2/pi in float32
PIO2_C1 = F32(float.fromhex("0x1.921fp0"))                   # pi/2 = C1 + C2 + C3 + 1.2e-18 (C1, C2: 17 bits;
PIO2_C2 = F32(float.fromhex("0x1.6a89p-17"))                 #  C1 rounded down, so C2 > 0 keeps the sign of a
PIO2_C3 = F32(float.fromhex("-0x1.e973dcp-35"))              #  zero; from 80 decimal digits of pi)
LARGE = F32(120.0)
# 2/pi as sliding 32-bit windows (entry i = floor(2/pi * 2^(8i + 8)) mod 2^32): glibc's __inv_pio4 layout.
INV_PIO4_TABLE = np.array([
    0xa2, 0xa2f9, 0xa2f983, 0xa2f9836e, 0xf9836e4e, 0x836e4e44, 0x6e4e4415, 0x4e441529,
    0x441529fc, 0x1529fc27, 0x29fc2757, 0xfc2757d1, 0x2757d1f5, 0x57d1f534, 0xd1f534dd, 0xf534ddc0,
    0x34ddc0db, 0xddc0db62, 0xc0db6295, 0xdb629599, 0x6295993c, 0x95993c43, 0x993c4390, 0x3c439041], np.uint64)


def as_f32(bits: np.ndarray) -> np.ndarray:
    return np.asarray(bits, np.uint32).view(np.float32)


def as_bits(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, np.float32).view(np.uint32)


def pow2_f32(k: np.ndarray) -> np.ndarray:
    """2^k as float32 for integer k in [-126, 127], built from the exponent bits."""
    return as_f32(((np.asarray(k, np.int64) + 127) << 23).astype(np.uint32))


def rint_f32(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rint(t) as float32, as int64) with the 0x1.8p23 trick: no libm, vectorisable, defined for NaN/inf bits."""
    s = (t + MAGIC32).astype(F32)
    k = as_bits(s).astype(np.int64) - 0x4B400000
    return (s - MAGIC32).astype(F32), k


def scale_pow2(p: np.ndarray, k: np.ndarray) -> np.ndarray:
    """p * 2^k with k in [-151, 129] as two products: the first exact, the second rounding once."""
    k1 = k >> 1
    return (p * pow2_f32(k1)).astype(F32) * pow2_f32(k - k1)


def payne_hanek(ax: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(r, n): |x| = n pi/2 + r with |r| <= pi/4, r in binary64, for float32 |x| >= 2 (used for |x| >= 120).

    Integer arithmetic mod 2^64 on the 24-bit significand and 96 bits of 2/pi chosen by the exponent, as in
    glibc's sinf (Szabolcs Nagy, 2018).
    """
    xi = as_bits(ax).astype(np.uint64)
    idx = ((xi >> np.uint64(26)) & np.uint64(15)).astype(np.int64)
    shift = (xi >> np.uint64(23)) & np.uint64(7)
    m = ((xi & np.uint64(0xFFFFFF)) | np.uint64(0x800000)) << shift
    mask32 = np.uint64(0xFFFFFFFF)
    res0 = (m * INV_PIO4_TABLE[idx]) & mask32
    res1 = m * INV_PIO4_TABLE[idx + 4]
    res2 = m * INV_PIO4_TABLE[idx + 8]
    res0 = (res2 >> np.uint64(32)) | (res0 << np.uint64(32))
    res0 = res0 + res1
    n = (res0 + np.uint64(1 << 61)) >> np.uint64(62)
    res0 = res0 - (n << np.uint64(62))
    r = res0.view(np.int64).astype(np.float64) * PI63
    return r, n.astype(np.int64)


@dataclass(frozen=True)
class Target:
    """One function to approximate: its reduced interval, reduced-domain reference and the fixed harness."""

    name: ClassVar[str]
    n_outputs: ClassVar[int] = 1
    n_inputs: ClassVar[int] = 1
    interval: ClassVar[tuple[float, float]]
    # floating-point operations (binary32 or binary64; compares and selects count 1, integer bit manipulation 0) of the
    # fixed reduction + reconstruction on the common path, so that op totals can be compared honestly
    harness_ops: ClassVar[int]
    reference64: ClassVar[Callable[[np.ndarray], np.ndarray]]

    # per output, the reduced interval its fit uses (None: all outputs on `interval`)
    output_intervals: ClassVar[tuple[tuple[float, float], ...] | None] = None

    def reduced_reference(self, r: np.ndarray) -> list[np.ndarray]:
        raise NotImplementedError

    def reduced_scale(self, r: np.ndarray, refs: list[np.ndarray]) -> list[np.ndarray]:
        """Weights of the fitter's residuals: relative error by default."""
        return [1.0 / np.maximum(np.abs(f), 1e-300) for f in refs]

    def program_inputs(self, r: np.ndarray) -> list[np.ndarray]:
        """The program's input registers for the fitter's nodes r (float64): r, and zero low parts."""
        return [r] + [np.zeros_like(r)] * (self.n_inputs - 1)

    def reduce(self, x: np.ndarray) -> tuple[np.ndarray, dict]:
        raise NotImplementedError

    def reconstruct(self, outputs: list[np.ndarray], state: dict, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def evaluate(self, program: Program, constants, x: np.ndarray) -> np.ndarray:
        """The whole function on float32 inputs, bit-exact with the emitted C."""
        x = np.asarray(x, F32)
        with np.errstate(all="ignore"):
            r, state = self.reduce(x)
            outs = evaluate_f32(program, constants, r, self.n_outputs)
            return self.reconstruct(outs, state, x)

    def reference(self, x: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            return type(self).reference64(np.asarray(x, F32).astype(np.float64))

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Stratified: half uniform over the float32 bit patterns of the domain, half uniform in value where the
        reduction wraps (every k equally likely)."""
        raise NotImplementedError

    def hard_points(self) -> np.ndarray:
        raise NotImplementedError


def _bit_uniform(lo: float, hi: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """Floats drawn uniformly over the bit patterns in [lo, hi] (so every binade is equally represented)."""
    def key(v):  # monotone map float32 -> int
        b = int(np.array([v], F32).view(np.int32)[0])
        return b if b >= 0 else -(b & 0x7FFFFFFF)
    a, b = key(lo), key(hi)
    ks = rng.integers(a, b + 1, n, dtype=np.int64)
    bits = np.where(ks >= 0, ks, (-ks) | 0x80000000).astype(np.uint32)
    return bits.view(F32)


def _around(values, count: int = 3) -> np.ndarray:
    """Each value and its `count` float32 neighbours on both sides."""
    v = np.asarray(values, F32)
    out = [v]
    lo, hi = v.copy(), v.copy()
    with np.errstate(over="ignore"):
        for _ in range(count):
            lo = np.nextafter(lo, F32(-np.inf))
            hi = np.nextafter(hi, F32(np.inf))
            out += [lo, hi]
    return np.concatenate(out)


@dataclass(frozen=True)
class Exp(Target):
    name: ClassVar[str] = "exp"
    interval: ClassVar[tuple[float, float]] = (-0.3467, 0.3467)
    harness_ops: ClassVar[int] = 9      # 2 clamps, mul, add, sub (rint), 2 fma, 2 mul (scale)
    reference64: ClassVar = staticmethod(np.exp)
    lo_clamp: ClassVar[float] = -104.0
    hi_clamp: ClassVar[float] = 89.0

    def reduced_reference(self, r):
        return [np.exp(r)]

    def reduce(self, x):
        xc = np.where(x > F32(self.hi_clamp), F32(self.hi_clamp), x)
        xc = np.where(xc < F32(self.lo_clamp), F32(self.lo_clamp), xc).astype(F32)
        kf, k = rint_f32((xc * LOG2E).astype(F32))
        r = fma_f32(-kf, LN2_HI, xc)
        r = fma_f32(-kf, LN2_LO, r)
        return r, {"k": k}

    def reconstruct(self, outputs, state, x):
        return scale_pow2(outputs[0], state["k"]).astype(F32)

    def sample(self, n, rng):
        a = _bit_uniform(self.lo_clamp, self.hi_clamp, n // 2, rng)
        k = rng.integers(-150, 129, n - n // 2)
        r = rng.uniform(-0.5 * np.log(2), 0.5 * np.log(2), k.size)
        return np.concatenate([a, (k * np.log(2) + r).astype(F32)])

    def hard_points(self):
        k = np.arange(-150, 129)
        half = (k + 0.5) * np.log(2)
        edges = [88.72283935546875, -87.33654022216797, -103.97207641601562, -103.27892303466797, 0.0]
        return _around(np.concatenate([half, edges, [F32(2.0 ** -25), F32(-(2.0 ** -25))]]), 2)


@dataclass(frozen=True)
class Exp2(Exp):
    name: ClassVar[str] = "exp2"
    interval: ClassVar[tuple[float, float]] = (-0.5, 0.5)
    harness_ops: ClassVar[int] = 7      # 2 clamps, add, sub (rint), sub (r), 2 mul (scale)
    reference64: ClassVar = staticmethod(np.exp2)
    lo_clamp: ClassVar[float] = -151.0
    hi_clamp: ClassVar[float] = 129.0

    def reduced_reference(self, r):
        return [np.exp2(r)]

    def reduce(self, x):
        xc = np.where(x > F32(self.hi_clamp), F32(self.hi_clamp), x)
        xc = np.where(xc < F32(self.lo_clamp), F32(self.lo_clamp), xc).astype(F32)
        kf, k = rint_f32(xc)
        return (xc - kf).astype(F32), {"k": k}

    def sample(self, n, rng):
        a = _bit_uniform(self.lo_clamp, self.hi_clamp, n // 2, rng)
        k = rng.integers(-151, 130, n - n // 2)
        return np.concatenate([a, (k + rng.uniform(-0.5, 0.5, k.size)).astype(F32)])

    def hard_points(self):
        k = np.arange(-151, 130)
        return _around(np.concatenate([k + 0.5, k, [2.0 ** -25, -(2.0 ** -25)]]), 2)


@dataclass(frozen=True)
class Log(Target):
    name: ClassVar[str] = "log"
    interval: ClassVar[tuple[float, float]] = (0.70710677 - 1.0, 1.4142137 - 1.0)
    harness_ops: ClassVar[int] = 10     # subnormal test/scale/select, m - 1, int->float, 2 fma, 3 special selects
    reference64: ClassVar = staticmethod(np.log)

    def reduced_reference(self, r):
        return [np.log1p(r)]

    def reduce(self, x):
        tiny = as_bits(x) < 0x00800000                       # +0 and positive subnormals (integer test, as in C)
        xs = np.where(tiny, (x * F32(2.0 ** 23)).astype(F32), x)
        ix = as_bits(xs).astype(np.int64)
        t = (ix - SQRT_HALF_BITS) & 0xFFFFFFFF
        t = np.where(t >= 2 ** 31, t - 2 ** 32, t)          # int32 wrap, as in C
        e = t >> 23
        m = as_f32(((ix - (e << 23)) & 0xFFFFFFFF).astype(np.uint32))
        f = (m - F32(1.0)).astype(F32)
        e = e - np.where(tiny, 23, 0)
        return f, {"e": e.astype(F32)}

    def combine(self, p, ef, f):
        return fma_f32(ef, LN2_F, fma_f32(ef, LN2_F_LO, p))

    def reconstruct(self, outputs, state, x):
        y = self.combine(outputs[0], state["e"], state.get("f"))
        y = np.where(x == F32(np.inf), F32(np.inf), y)
        y = np.where(x == 0, F32(-np.inf), y)
        y = np.where((x < 0) | np.isnan(x), F32(np.nan), y)
        return y.astype(F32)

    def sample(self, n, rng):
        a = _bit_uniform(0.0, float(np.finfo(F32).max), n // 2, rng)
        return np.concatenate([a, rng.uniform(0.5, 2.0, n - n // 2).astype(F32)])

    def hard_points(self):
        return _around([1.0, 2.0, 0.5, 0.70710677, 1.4142135, 2.0 ** -126, 2.0 ** -149, 2.0 ** -140,
                        float(np.finfo(F32).max), np.e], 4)


@dataclass(frozen=True)
class Log2(Log):
    name: ClassVar[str] = "log2"
    harness_ops: ClassVar[int] = 11     # as log, with 3 ops for e + f/ln2 + f g(f)
    reference64: ClassVar = staticmethod(np.log2)

    def reduced_reference(self, r):
        with np.errstate(all="ignore"):
            return [np.where(r == 0, INVLN2 - float(INVLN2_HI), np.log1p(r) / (r * np.log(2.0)) - float(INVLN2_HI))]

    def reduce(self, x):
        f, state = super().reduce(x)
        state["f"] = f
        return f, state

    def combine(self, p, ef, f):
        v = fma_f32(f, INVLN2_HI, (f * p).astype(F32))
        return (ef + v).astype(F32)


@dataclass(frozen=True)
class Sin(Target):
    name: ClassVar[str] = "sin"
    n_outputs: ClassVar[int] = 2
    interval: ClassVar[tuple[float, float]] = (-0.7854, 0.7854)
    harness_ops: ClassVar[int] = 19     # test, 7 float32 (Cody-Waite double-float), 10 combine (z^2, rh z, rh rl, rh/2,
    #                                     2 fmas + 1 - D for cos, 2 fmas + rh + . for sin), 1 select
    reference64: ClassVar = staticmethod(np.sin)
    quadrant_shift: ClassVar[int] = 0
    odd: ClassVar[bool] = True          # sin(-x) = -sin(x); cos is even

    def reduced_reference(self, r):
        """[P, Q] = [(sin r - r)/r^3, (cos r - 1 + r^2/2)/r^4] by their Taylor series (|r| <= pi/4: 12 terms reach
        binary64; the quotients would cancel near 0)."""
        z = np.asarray(r, np.float64) ** 2
        p, q = np.zeros_like(z), np.zeros_like(z)
        for k in range(11, -1, -1):         # Horner in z: (-1)^(k+1) z^k / (2k+3)!, (-1)^k z^k / (2k+4)!
            p = p * z + (-1.0) ** (k + 1) / math.factorial(2 * k + 3)
            q = q * z + (-1.0) ** k / math.factorial(2 * k + 4)
        return [p, q]

    def reduce(self, x):
        ax = np.abs(x)
        large = ~(ax < LARGE)                                 # |x| >= 120, inf, NaN: the scalar slow path
        rh_f, rl_f, n_f = self.reduce_fast(ax)
        r_large, n_large = payne_hanek(np.where(large & np.isfinite(x), ax, F32(1000.0)))
        rh_l = r_large.astype(F32)
        rl_l = (r_large - rh_l.astype(np.float64)).astype(F32)
        rh = np.where(large, rh_l, rh_f).astype(F32)
        rl = np.where(large, rl_l, rl_f).astype(F32)
        n = np.where(large, n_large, n_f)
        return rh, {"q": (n + self.quadrant_shift) & 3, "rh": rh, "rl": rl}

    @staticmethod
    def reduce_fast(ax):
        """(rh, rl, n) with rh + rl = a - n pi/2 for 0 <= a < 120, float32 operations only (as the vector C loop)."""
        sh = fma_f32(ax, INV_PIO2_F, MAGIC32)                 # rint(a 2/pi) in the low bits
        kf = (sh - MAGIC32).astype(F32)
        n = as_bits(sh).astype(np.int64) - 0x4B400000
        r1 = fma_f32(-kf, PIO2_C1, ax)                        # exact
        rh = fma_f32(-kf, PIO2_C2, r1)
        rl = fma_f32(-kf, PIO2_C2, (r1 - rh).astype(F32))     # r1 - rh exact, so this is rh's rounding error
        rl = fma_f32(-kf, PIO2_C3, rl)
        return rh, rl, n

    @staticmethod
    def combine(p, q, rh, rl):
        """(sin(rh + rl), cos(rh + rl)) from the program's outputs P ~ (sin(rh) - rh)/rh^3 and
        Q ~ (cos(rh) - 1 + rh^2/2)/rh^4."""
        z = (rh * rh).astype(F32)
        z2 = (z * z).astype(F32)
        r3 = (rh * z).astype(F32)
        t = (rh * rl).astype(F32)
        hr = (F32(0.5) * rh).astype(F32)
        c = (F32(1.0) - fma_f32(rh, hr, fma_f32(-z2, q, t))).astype(F32)
        s = (rh + fma_f32(r3, p, fma_f32(-t, hr, rl))).astype(F32)
        return s, c

    def reconstruct(self, outputs, state, x):
        q, rh, rl = state["q"], state["rh"], state["rl"]
        s, c = self.combine(outputs[0], outputs[1], rh, rl)
        y = np.where(q & 1 == 0, s, c)
        flip = (q & 2) != 0
        if self.odd:
            flip = flip != (as_bits(x) >= 0x80000000)
        y = np.where(flip, -y, y).astype(F32)
        return np.where(np.isfinite(x), y, F32(np.nan)).astype(F32)

    def sample(self, n, rng):
        big = float(np.finfo(F32).max)
        a = _bit_uniform(-big, big, n // 2, rng)
        return np.concatenate([a, rng.uniform(-50.0, 50.0, n - n // 2).astype(F32)])

    def hard_points(self):
        k = np.arange(-64, 65)
        near = (k * np.pi / 2).astype(F32)
        near_quarter = ((k + 0.5) * np.pi / 2).astype(F32)
        worst = [float.fromhex("0x1.99bc5cp+27"), float.fromhex("0x1.4a7ba4p+84"), 120.0, 119.99999, 2.0 ** -12,
                 1e-30, 3.4e38, 1.0e10]
        pts = _around(np.concatenate([near, near_quarter, worst]), 2)
        return np.concatenate([pts, -pts])


@dataclass(frozen=True)
class Cos(Sin):
    name: ClassVar[str] = "cos"
    reference64: ClassVar = staticmethod(np.cos)
    quadrant_shift: ClassVar[int] = 1
    odd: ClassVar[bool] = False


TARGETS: dict[str, Target] = {t.name: t() for t in (Exp, Exp2, Log, Log2, Sin, Cos)}    # + activations.py's


def ulp32(ref: np.ndarray) -> np.ndarray:
    """The float32 ULP at |ref| (binary64 values): 2^(floor(log2|ref|) - 23), and 2^-149 below 2^-126.

    Above FLT_MAX the binade spacing 2^104 is continued, so a finite answer past the overflow threshold has a finite
    error."""
    a = np.abs(np.asarray(ref, np.float64))
    _, e = np.frexp(a)
    return np.where(a < 2.0 ** -126, 2.0 ** -149, np.ldexp(1.0, np.maximum(e - 24, -149)))


def ulp_error(y: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """|y - f(x)| in float32 ULPs of f(x), from a binary64 reference (see objectives/ulp.py for why that is enough).

    NaN vs NaN and inf vs a reference that rounds to the same inf count 0; NaN vs a number, or inf where the
    reference rounds to a finite float32, count inf."""
    y64 = np.asarray(y, F32).astype(np.float64)
    ref = np.asarray(ref, np.float64)
    with np.errstate(all="ignore"):
        ref32 = ref.astype(F32).astype(np.float64)
        err = np.abs(y64 - ref) / ulp32(ref)
        yinf = np.isinf(y64)
        err = np.where(yinf, np.where(y64 == ref32, 0.0, np.inf), err)
        err = np.where(np.isinf(ref) & ~yinf, np.inf, err)
        ynan, rnan = np.isnan(y64), np.isnan(ref)
        err = np.where(ynan | rnan, np.where(ynan & rnan, 0.0, np.inf), err)
    return err


import spaces.float32.activations  # noqa: E402,F401  (registers tanh, sigmoid and erf in TARGETS)
