"""Source code for a fitted program plus its target's fixed reduction: portable C, NumPy and Triton.

All three compute exactly what `reduction.Target.evaluate` simulates (checked bit for bit in the tests for C and
NumPy): the same operations in the same order, each rounded once, fma rounded once, no contraction of a*b + c.

C: C99, exports `float evoforge_NAME(float)`, no libm call in the core: `fmaf` becomes one instruction when the
compiler targets an FMA unit (`__FP_FAST_FMAF`, e.g. gcc -O3 -march=native / -mfma) and an exact software fma
(binary64 product, TwoSum, round-to-odd, as in `program.fma_f32`) otherwise. The file turns floating-point
contraction off, because a fused a*b + c would be more accurate than the verified program, and different.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from spaces.float32 import activations as A
from spaces.float32 import emit_activations as EA
from spaces.float32 import reduction as R
from spaces.float32 import triton_trig
from spaces.float32.program import CONST, Program, register_name


def _c_float(v: float) -> str:
    v32 = float(np.float32(v))
    return f"{v32.hex()}f" if np.isfinite(v32) else ("(1.0f/0.0f)" if v32 > 0 else "(-1.0f/0.0f)")


def _c_double(v: float) -> str:
    return float(v).hex()


def _operands(program: Program, constants: Sequence[float], n_in: int, literal) -> list[list[str]]:
    consts = iter(constants)
    out = []
    for _, args in program:
        out.append([literal(next(consts)) if a == CONST else register_name(a, n_in) for a in args])
    return out


def _c_core(program: Program, constants: Sequence[float], target: R.Target) -> str:
    n_in = target.n_inputs
    params = ", ".join(f"float {register_name(i, n_in)}" for i in range(n_in))
    outs = [register_name(n_in + len(program) - target.n_outputs + j, n_in) for j in range(target.n_outputs)]
    lines = []
    for i, ((op, _), a) in enumerate(zip(program, _operands(program, constants, n_in, _c_float))):
        expr = {"add": f"{a[0]} + {a[1]}", "sub": f"{a[0]} - {a[1]}", "mul": f"{a[0]} * {a[1]}",
                "div": f"{a[0]} / {a[1]}"}.get(op) or f"ef_fma({a[0]}, {a[1]}, {a[2]})"
        lines.append(f"    const float {register_name(n_in + i, n_in)} = {expr};")
    if target.n_outputs == 1:
        sig = f"EF_INLINE float ef_core({params})"
        ret = f"    return {outs[0]};"
    elif target.n_outputs == 2:
        sig = f"EF_INLINE void ef_core({params}, float *out_s, float *out_c)"
        ret = f"    *out_s = {outs[0]};\n    *out_c = {outs[1]};"
    else:
        sig = f"EF_INLINE void ef_core({params}, " + ", ".join(f"float *out{j}" for j in range(len(outs))) + ")"
        ret = "\n".join(f"    *out{j} = {o};" for j, o in enumerate(outs))
    return sig + " {\n" + "\n".join(lines) + "\n" + ret + "\n}\n"


C_PRELUDE = """\
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <math.h>   /* INFINITY and NAN only; the core calls no libm function */

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
/* no-trapping-math: lets gcc if-convert the clamps and selects (it keeps results, only FP exception flags may
   differ), without which the array loops do not vectorise */
#pragma GCC optimize ("fp-contract=off", "no-trapping-math")
#if defined(__AVX512F__)
/* AVX-512 hosts: 16 lanes per instruction (gcc's default tuning keeps 8); same operations per lane, same bits,
   1.2-1.5x the in-cache throughput on a Xeon (bench/README.md) */
#pragma GCC target ("prefer-vector-width=512")
#endif
#endif

#if defined(__GNUC__)
#define EF_INLINE static inline __attribute__((always_inline))
#define EF_PREFETCH(p) __builtin_prefetch(p)
#else
#define EF_INLINE static inline
#define EF_PREFETCH(p) ((void)0)
#endif

static inline uint32_t ef_bits(float x) { uint32_t u; memcpy(&u, &x, sizeof u); return u; }
static inline float ef_float(uint32_t u) { float x; memcpy(&x, &u, sizeof x); return x; }

/* fma rounded once: the hardware instruction when there is one, else binary64 product (exact), TwoSum, and
   round-to-odd before the final rounding to binary32 (exact because 53 >= 2*24 + 2). */
EF_INLINE float ef_fma(float a, float b, float c) {
#if defined(__FP_FAST_FMAF)
    return __builtin_fmaf(a, b, c);
#else
    double p = (double)a * (double)b;
    double s = p + (double)c;
    double bb = s - p;
    double e = (p - (s - bb)) + ((double)c - bb);
    if (e != 0.0 && e - e == 0.0) {
        uint64_t u; memcpy(&u, &s, sizeof u);
        if ((u & 1u) == 0) { u += ((e > 0.0) == (s > 0.0)) ? 1 : (uint64_t)-1; memcpy(&s, &u, sizeof s); }
    }
    return (float)s;
#endif
}
"""


def _c_exp_like(target: R.Target, name: str) -> str:
    lo, hi = _c_float(target.lo_clamp), _c_float(target.hi_clamp)
    if target.name == "exp":
        reduce = (f"    const float sh = xc * {_c_float(R.LOG2E)} + 0x1.8p23f;\n"
                  "    const float kf = sh - 0x1.8p23f;\n"
                  f"    float r = ef_fma(-kf, {_c_float(R.LN2_HI)}, xc);\n"
                  f"    r = ef_fma(-kf, {_c_float(R.LN2_LO)}, r);\n")
    else:
        reduce = ("    const float sh = xc + 0x1.8p23f;\n"
                  "    const float kf = sh - 0x1.8p23f;\n"
                  "    const float r = xc - kf;\n")
    return (f"EF_INLINE float evoforge_{name}_inline(float x) {{\n"
            f"    float xc = x > {hi} ? {hi} : x;          /* NaN passes through both clamps */\n"
            f"    xc = xc < {lo} ? {lo} : xc;\n"
            + reduce +
            "    const int32_t k = (int32_t)(ef_bits(sh) - 0x4B400000u);\n"
            "    const int32_t k1 = k >> 1;\n"
            "    const float p = ef_core(r);\n"
            "    const float y = p * ef_float((uint32_t)(k1 + 127) << 23);   /* exact */\n"
            "    return y * ef_float((uint32_t)(k - k1 + 127) << 23);         /* one rounding: subnormal, inf */\n"
            "}\n\n"
            f"/* |x - {_c_float(_exp_fast_window(target)[0])}| < {_c_float(_exp_fast_window(target)[1])} only (the array loop's common path; the rest is redone by\n"
            "   _inline): the clamps are no-ops there and k is in [-126, 127], where 2^k is a normal float, so one\n"
            "   product p 2^k, rounded once, is the two-step product's result bit for bit. */\n"
            f"EF_INLINE float evoforge_{name}_fast(float x) {{\n"
            "    const float xc = x;\n"
            + reduce +
            "    const int32_t k = (int32_t)(ef_bits(sh) - 0x4B400000u);\n"
            "    return ef_core(r) * ef_float((uint32_t)(k + 127) << 23);\n"
            "}\n\n"
            f"static float evoforge_{name}_slow(float x) {{ return evoforge_{name}_inline(x); }}\n")


def _exp_fast_window(target: R.Target) -> tuple[np.float32, np.float32]:
    """(center, half-width) of the inputs exp/exp2's fast path takes: every input whose result is a normal float
    but for the last few tenths at either end, so k = rint(x log2 e) (exp) or rint(x) (exp2) is in [-126, 127] and
    the clamps do nothing. exp: (-87.66, 88.34) of (-87.68, 88.38); exp2: (-126, 127) of (-126.5, 127.5)."""
    return (np.float32(0.34375), np.float32(88.0)) if target.name == "exp" else (np.float32(0.5), np.float32(126.5))


def _c_log_like(target: R.Target, name: str) -> str:
    if target.name == "log":
        combine = (f"    const float y = ef_fma(ef, {_c_float(R.LN2_F)}, ef_fma(ef, {_c_float(R.LN2_F_LO)}, p));\n")
    else:
        combine = (f"    const float v = ef_fma(f, {_c_float(R.INVLN2_HI)}, f * p);"
                   "   /* log2(1 + f), one rounding that matters */\n"
                   "    const float y = ef + v;\n")
    return (f"EF_INLINE float evoforge_{name}_inline(float x) {{\n"
            "    const uint32_t ix0 = ef_bits(x);\n"
            "    const int tiny = ix0 < 0x00800000u;                 /* +0 and positive subnormals */\n"
            "    const float xscaled = x * 0x1p23f;                 /* unconditional: keeps the loop branch-free */\n"
            "    const float xs = tiny ? xscaled : x;\n"
            "    const uint32_t ix = ef_bits(xs);\n"
            f"    const int32_t e = (int32_t)(ix - 0x{R.SQRT_HALF_BITS:08X}u) >> 23;   /* m in [sqrt(1/2), sqrt(2)) */\n"
            "    const float f = ef_float(ix - ((uint32_t)e << 23)) - 1.0f;            /* exact */\n"
            "    const float ef = (float)(e - (tiny ? 23 : 0));\n"
            "    const float p = ef_core(f);\n"
            + combine +
            "    /* special cases as integer masks (gcc will not vectorise the loop with float selects here):\n"
            "       +-0 -> -inf, +inf -> +inf, negative or NaN -> NaN; everything else keeps y */\n"
            "    const uint32_t zero = -(uint32_t)((ix0 & 0x7fffffffu) == 0);\n"
            "    const uint32_t inf = -(uint32_t)(ix0 == 0x7f800000u);\n"
            "    const uint32_t special = (0xff800000u & zero) | (0x7f800000u & inf) | (0x7fc00000u & ~(zero | inf));\n"
            "    const uint32_t use = -(uint32_t)((ix0 - 1u) >= 0x7f7fffffu);\n"
            "    return ef_float((special & use) | (ef_bits(y) & ~use));\n"
            "}\n\n"
            "/* Positive normal x only (the array loop's common path; the rest is redone by _inline): the same\n"
            "   operations as _inline there, without the subnormal scaling and the special-case masks. */\n"
            f"EF_INLINE float evoforge_{name}_fast(float x) {{\n"
            "    const uint32_t ix = ef_bits(x);\n"
            f"    const int32_t e = (int32_t)(ix - 0x{R.SQRT_HALF_BITS:08X}u) >> 23;\n"
            "    const float f = ef_float(ix - ((uint32_t)e << 23)) - 1.0f;\n"
            "    const float ef = (float)e;\n"
            "    const float p = ef_core(f);\n"
            + combine +
            "    return y;\n"
            "}\n\n"
            f"static float evoforge_{name}_slow(float x) {{ return evoforge_{name}_inline(x); }}\n")


#: how far ahead (floats) the array loops prefetch their input in calls too large for the cache
PREFETCH_AHEAD = 1024
#: calls above this many elements are memory-bound: they prefetch, and the staged loops run one pass
CACHE_RESIDENT = 65536


def _c_prefetch(indent: str) -> str:
    """Large calls: the next lines of input, PREFETCH_AHEAD floats (4 KiB) ahead, one prefetch per 64-byte line,
    issued once per block outside the vectorised loop. The hardware prefetcher alone keeps too few lines in flight
    when a function's arithmetic fills the out-of-order window (the loads of later iterations wait behind it); at
    2^24 elements on the Xeon this measured tanh 0.80 -> 0.59 ns, sigmoid 0.62 -> 0.53, sin 0.53 -> 0.50 per
    element (bench/README.md). Prefetching the output for writing was slower; cache-resident calls skip it."""
    return (f"{indent}if (n > {CACHE_RESIDENT} && i0 + {PREFETCH_AHEAD + 512} <= n)   /* large calls: input 4 KiB ahead */\n"
            f"{indent}    for (size_t j = 0; j < 512; j += 16) EF_PREFETCH(&in[i0 + {PREFETCH_AHEAD} + j]);\n")


def _c_plain_loop(name: str, stages: tuple[str, str, str] | None = None) -> str:
    """The array loop of a function with one branch-free path: in cache one loop over the call (blocks cost erf
    3% there, on the Xeon), or with `stages` (as in `_c_block_loop`) two passes per block of 512; larger calls
    one pass in blocks of 512, which place the prefetches."""
    if stages is None:
        cached = f"        for (size_t i = 0; i < n; i++) out[i] = evoforge_{name}_inline(in[i]);\n"
    else:
        cached = ("        for (size_t i0 = 0; i0 < n; i0 += 512) {\n"
                  "            const size_t m = n - i0 < 512 ? n - i0 : 512;\n"
                  f"            for (size_t i = 0; i < m; i++) {stages[1]}\n"
                  f"            for (size_t i = 0; i < m; i++) out[i0 + i] = {stages[2]};\n"
                  "        }\n")
    return ((f"    {stages[0]}    /* the first pass's results, lane by lane */\n" if stages else "") +
            f"    if (n <= {CACHE_RESIDENT}) {{\n"
            + cached +
            "        return;\n"
            "    }\n"
            "    for (size_t i0 = 0; i0 < n; i0 += 512) {\n"
            "        const size_t m = n - i0 < 512 ? n - i0 : 512;\n"
            + _c_prefetch(" " * 8) +
            f"        for (size_t i = 0; i < m; i++) out[i0 + i] = evoforge_{name}_inline(in[i0 + i]);\n"
            "    }\n}\n")


def _c_block_loop(name: str, key: str, threshold: int, stages: tuple[str, str, str] | None = None) -> str:
    """The array loop for a function with a branch-free `_fast` path and a scalar `_slow` one: blocks of 512, the
    fast path over the whole block (vectorised), the largest `key` of the block kept in the same loop (one unsigned
    max per vector), and only the lanes whose key is >= `threshold` redone with the slow path. `key` is a C
    expression of the input bits `{v}` (uint32_t).

    `stages` = (buffers, first, second) runs the fast path in two vectorised passes over the block instead of one,
    for calls of at most 2^16 elements (in + out 512 KiB: cache-resident on the machines we measure): `first` (a
    statement on `x` and lane `i`) fills the block-sized `buffers` (declared once, 512 each: L1-resident), `second`
    (an expression on lane `i`) is the result. Same operations, same bits; the gain is a shorter dependency chain per
    pass, so the out-of-order window (on AMD Zen 3 it fills with the FP ops of 3 to 4 iterations of a 45 to 70 cycle
    chain) holds more independent work: sin/cos 1.15x, sigmoid 1.2x faster in cache on this EPYC. Larger calls are
    memory-bound and keep the one-pass loop, whose loads and stores interleave (two passes measured 12% slower at
    2^24 elements: reads and writes to DRAM in alternating bursts)."""
    k = key.format(v="ef_bits(in[i0 + i])")

    def scan(first: str, indent: str) -> str:       # a vectorised pass over the block that also keeps the top key
        return (f"{indent}for (size_t i = 0; i < m; i++) {{\n"
                f"{indent}    {first}\n"
                f"{indent}    const uint32_t k = {k};\n"
                f"{indent}    top = k > top ? k : top;\n"
                f"{indent}}}\n")
    one_pass = f"out[i0 + i] = evoforge_{name}_fast(in[i0 + i]);"
    if stages is None:
        buffers, passes = "", scan(one_pass, " " * 8)
    else:
        buffers = (f"    {stages[0]}    /* the first pass's results, lane by lane */\n"
                   f"    const int staged = n <= {CACHE_RESIDENT};                 /* two passes only where cache-resident */\n")
        passes = ("        if (staged) {\n"
                  + scan(stages[1], " " * 12) +
                  "            for (size_t i = 0; i < m; i++)\n"
                  f"                out[i0 + i] = {stages[2]};\n"
                  "        } else\n"
                  + scan(one_pass, " " * 12).replace(" " * 12 + "for", " " * 12 + "for", 1))
    return (buffers +
            "    for (size_t i0 = 0; i0 < n; i0 += 512) {       /* blocks: fast path vectorised, rare lanes redone */\n"
            "        const size_t m = n - i0 < 512 ? n - i0 : 512;\n"
            + _c_prefetch(" " * 8) +
            "        uint32_t top = 0;                          /* largest key of the block */\n"
            + passes +
            f"        if (top >= 0x{threshold:08x}u)\n"
            "            for (size_t i = 0; i < m; i++)\n"
            f"                if ({k} >= 0x{threshold:08x}u)\n"
            f"                    out[i0 + i] = evoforge_{name}_slow(in[i0 + i]);\n"
            "    }\n}\n")


def _c_trig(target: R.Target, name: str) -> str:
    """Two paths: `_fast` (|x| < 120, float32 Cody-Waite, branch-free, so a loop over it vectorises) and `_slow`
    (Payne-Hanek for huge |x|, inf, NaN). The array version runs the fast path over a block, keeps the largest |x|
    bits in the same vectorised loop, and re-does only the lanes with |x| >= 120 with the scalar slow path.

    The fast path reduces x itself, not |x|: every step is odd-symmetric under round-to-nearest-even, so -x gives
    -rh, -rl and -n, and the quadrant arithmetic then yields sin's sign (cos has none) with no sign bit to merge or
    put back: the same bits as reducing |x| (all 2^32 inputs compared), two vector operations fewer for sin. The
    quadrant offset of cos (a quarter turn) rides in the shifter's constant, so q costs no add either."""
    table = ", ".join(f"0x{int(v):08x}u" for v in R.INV_PIO4_TABLE)
    sign = "ef_bits(x) & 0x80000000u" if target.odd else "0u"       # the slow path reduces |x|
    shift = target.quadrant_shift
    shifter = f"{12582912.0 + shift:.1f}f" if shift else "0x1.8p23f"   # 1.5 * 2^23 (+ shift)
    plus_shift = f" + {shift}" if shift else ""
    return (f"static const uint32_t ef_inv_pio4[24] = {{{table}}};\n\n"
            "/* Payne-Hanek for float32 |x| >= 2: 2/pi bits picked by the exponent, integer products (glibc sinf). */\n"
            "static inline double ef_reduce_large(uint32_t xi, int32_t *np) {\n"
            "    const uint32_t *arr = &ef_inv_pio4[(xi >> 26) & 15];\n"
            "    const int shift = (xi >> 23) & 7;\n"
            "    uint64_t n, res0, res1, res2;\n"
            "    xi = ((xi & 0xffffff) | 0x800000) << shift;\n"
            "    res0 = (uint64_t)(uint32_t)(xi * arr[0]);\n"
            "    res1 = (uint64_t)xi * arr[4];\n"
            "    res2 = (uint64_t)xi * arr[8];\n"
            "    res0 = (res2 >> 32) | (res0 << 32);\n"
            "    res0 += res1;\n"
            "    n = (res0 + (1ULL << 61)) >> 62;\n"
            "    res0 -= n << 62;\n"
            "    *np = (int32_t)n;\n"
            f"    return (double)(int64_t)res0 * {_c_double(R.PI63)};\n"
            "}\n\n"
            f"/* {name} of x, x = n pi/2 + rh + rl, q = n{plus_shift}{' (the quadrant of sin)' if shift else ''}: only the value the quadrant\n"
            "   needs is kept (one blend); sign: a sign bit to put back (the slow path reduces |x|). */\n"
            f"EF_INLINE float ef_{name}_finish(float rh, float rl, uint32_t q, uint32_t sign) {{\n"
            "    float p, q2;\n"
            "    ef_core(rh, &p, &q2);     /* (sin(rh) - rh)/rh^3, (cos(rh) - 1 + rh^2/2)/rh^4, polynomials in rh^2 */\n"
            "    const float z = rh * rh, z2 = z * z, r3 = rh * z, t = rh * rl, hr = 0.5f * rh;\n"
            "    const float c = 1.0f - ef_fma(rh, hr, ef_fma(-z2, q2, t));    /* 1 - cos, rounded once */\n"
            "    /* rl cos(rh) ~ rl - rl rh^2/2; rh - (-...), not rh + (...): the same bits, and sin(-0) = -0 */\n"
            "    const float s = rh - ef_fma(-r3, p, ef_fma(t, hr, -rl));\n"
            "    /* a float select on the sign bit of q << 31 (odd quadrant): gcc emits one blend */\n"
            "    const float y = (int32_t)(q << 31) < 0 ? c : s;\n"
            "    return ef_float(ef_bits(y) ^ (((q << 30) ^ sign) & 0x80000000u));\n"
            "}\n\n"
            "/* |x| < 120: three-part Cody-Waite in float32 giving x - n pi/2 = rh + rl (reduction.py), on x itself (see\n"
            f"   emit.py: _c_trig). No branch. nq: the shifter's bits, 0x4B400000 + n{plus_shift}: the quadrant q in the low bits. */\n"
            f"EF_INLINE void evoforge_{name}_reduce(float x, float *rh_out, float *rl_out, uint32_t *nq_out) {{\n"
            f"    const float sh = ef_fma(x, {_c_float(R.INV_PIO2_F)}, {shifter});   /* rint(x 2/pi){plus_shift} in the low bits */\n"
            f"    const float kf = sh - {shifter};\n"
            f"    const float r1 = ef_fma(-kf, {_c_float(R.PIO2_C1)}, x);      /* exact */\n"
            f"    const float rh = ef_fma(-kf, {_c_float(R.PIO2_C2)}, r1);\n"
            f"    *rl_out = ef_fma(-kf, {_c_float(R.PIO2_C3)}, ef_fma(-kf, {_c_float(R.PIO2_C2)}, r1 - rh));"
            "   /* r1 - rh exact */\n"
            "    *rh_out = rh;\n"
            "    *nq_out = ef_bits(sh);\n"
            "}\n\n"
            f"EF_INLINE float evoforge_{name}_fast(float x) {{\n"
            "    float rh, rl;\n"
            "    uint32_t nq;\n"
            f"    evoforge_{name}_reduce(x, &rh, &rl, &nq);\n"
            f"    return ef_{name}_finish(rh, rl, nq, 0u);\n"
            "}\n\n"
            "/* |x| >= 120, inf, NaN: Payne-Hanek (not inlined: it stays out of the vector loop). */\n"
            f"static float evoforge_{name}_slow(float x) {{\n"
            "    const uint32_t ai = ef_bits(x) & 0x7fffffffu;\n"
            "    if (ai > 0x7f7fffffu) return NAN;                 /* inf and NaN */\n"
            "    int32_t n;\n"
            "    const double r = ef_reduce_large(ai, &n);\n"
            "    const float rh = (float)r;\n"
            f"    return ef_{name}_finish(rh, (float)(r - (double)rh), (uint32_t)n{plus_shift}, {sign});\n"
            "}\n\n"
            f"EF_INLINE float evoforge_{name}_inline(float x) {{\n"
            f"    return ef_float(ef_bits(x) & 0x7fffffffu) < {_c_float(R.LARGE)} ? evoforge_{name}_fast(x) "
            f": evoforge_{name}_slow(x);\n"
            "}\n")


def emit_c(program: Program, constants: Sequence[float], target: R.Target, note: str = "") -> str:
    name = target.name
    head = (f"/* evoforge float32 {name}: generated by evoforge (spaces/float32). {note}\n"
            f"   Program (after the fixed range reduction): {len(program)} operations.\n"
            f"   Build: cc -O3 -march=native (FMA unit) or any C99 compiler (exact software fma). */\n")
    body = {"exp": _c_exp_like, "exp2": _c_exp_like, "log": _c_log_like, "log2": _c_log_like,
            "sin": _c_trig, "cos": _c_trig, "tanh": EA.c_body, "sigmoid": EA.c_body, "erf": EA.c_body}[name](target, name)
    api = (f"\n/* The exported scalar function, and an array version whose loop the compiler vectorises. */\n"
           f"float evoforge_{name}(float x) {{ return evoforge_{name}_inline(x); }}\n\n"
           f"void evoforge_{name}_array(const float *restrict in, float *restrict out, size_t n) {{\n")
    if name in ("sin", "cos"):      # |x| >= 120, inf, NaN
        api += _c_block_loop(name, "({v} & 0x7fffffffu)", int(R.as_bits(np.float32(R.LARGE))),
                             ("float rh_[512], rl_[512];\n    uint32_t nq_[512];",
                              f"evoforge_{name}_reduce(in[i0 + i], &rh_[i], &rl_[i], &nq_[i]);",
                              f"ef_{name}_finish(rh_[i], rl_[i], nq_[i], 0u)"))
    elif name in ("exp", "exp2"):   # |x| beyond the fast path's bound, inf, NaN
        center, half = _exp_fast_window(target)
        api += _c_block_loop(name, f"(ef_bits(ef_float({{v}}) - {_c_float(center)}) & 0x7fffffffu)", int(R.as_bits(half)))
    elif name in ("log", "log2"):   # not a positive normal float (0, subnormal, inf, NaN, negative)
        api += _c_block_loop(name, "({v} - 0x00800000u)", 0x7F000000)
    elif name == "sigmoid":         # |x| >= 80, inf, NaN
        api += _c_block_loop(name, "({v} & 0x7fffffffu)", A.SIGMOID_FAST_BELOW,
                             ("float r_[512], q_[512];\n    uint32_t sb_[512];",
                              f"evoforge_{name}_reduce(in[i0 + i], &r_[i], &q_[i], &sb_[i]);",
                              f"evoforge_{name}_finish(r_[i], q_[i], sb_[i])"))
    elif name == "tanh":            # no rare lanes (clamped); two passes in cache
        api += _c_plain_loop(name, ("float eh_[512], el_[512];\n    uint32_t sign_[512];",
                                    "evoforge_tanh_reduce(in[i0 + i], &eh_[i], &el_[i], &sign_[i]);",
                                    "evoforge_tanh_finish(eh_[i], el_[i], sign_[i])"))
    else:
        api += _c_plain_loop(name)
    return head + C_PRELUDE + "\n" + _c_core(program, constants, target) + "\n" + body + api


# ---------------------------------------------------------------------------------------------------------------------
# NumPy: a standalone module, vectorised over arrays, bit-exact with the C (same helpers as the simulation).

NUMPY_PRELUDE = '''\
import numpy as np

F32 = np.float32


def fma(a, b, c):
    """float32 fma rounded once: exact binary64 product, TwoSum, round-to-odd, then one rounding to binary32."""
    a, b, c = (np.asarray(v, F32).astype(np.float64) for v in (a, b, c))
    p = a * b
    s = p + c
    bb = s - p
    e = (p - (s - bb)) + (c - bb)
    need = (e != 0) & np.isfinite(e) & ((s.view(np.uint64) & np.uint64(1)) == 0)
    s = np.where(need, np.nextafter(s, np.where(e > 0, np.inf, -np.inf)), s)
    return s.astype(F32)


def f32(bits):
    return np.asarray(bits, np.int64).astype(np.uint32).view(F32)


def bits(x):
    return np.asarray(x, F32).view(np.uint32).astype(np.int64)
'''


def _np_core(program: Program, constants: Sequence[float], target: R.Target) -> str:
    n_in = target.n_inputs
    params = ", ".join(register_name(i, n_in) for i in range(n_in))
    lines = []
    lit = lambda v: f"F32(float.fromhex({float(np.float32(v)).hex()!r}))"  # noqa: E731
    for i, ((op, _), a) in enumerate(zip(program, _operands(program, constants, n_in, lit))):
        expr = {"add": f"({a[0]} + {a[1]})", "sub": f"({a[0]} - {a[1]})", "mul": f"({a[0]} * {a[1]})",
                "div": f"({a[0]} / {a[1]})"}.get(op) or f"fma({a[0]}, {a[1]}, {a[2]})"
        lines.append(f"    {register_name(n_in + i, n_in)} = np.asarray({expr}, F32)")
    outs = [register_name(n_in + len(program) - target.n_outputs + j, n_in) for j in range(target.n_outputs)]
    return f"def core({params}):\n" + "\n".join(lines) + f"\n    return {', '.join(outs)}\n"


def _np_h(v) -> str:
    return f"F32(float.fromhex({float(np.float32(v)).hex()!r}))"


def _np_body(target: R.Target) -> str:
    name = target.name
    if name in ("tanh", "sigmoid", "erf"):
        return EA.numpy_body(target, name)
    if name in ("exp", "exp2"):
        red = (f"    sh = (xc * {_np_h(R.LOG2E)} + F32(12582912.0)).astype(F32)\n"
               "    kf = (sh - F32(12582912.0)).astype(F32)\n"
               f"    r = fma(-kf, {_np_h(R.LN2_HI)}, xc)\n"
               f"    r = fma(-kf, {_np_h(R.LN2_LO)}, r)\n") if name == "exp" else (
               "    sh = (xc + F32(12582912.0)).astype(F32)\n"
               "    kf = (sh - F32(12582912.0)).astype(F32)\n"
               "    r = (xc - kf).astype(F32)\n")
        return (f"def evoforge_{name}(x):\n"
                "    x = np.asarray(x, F32)\n"
                "    with np.errstate(all='ignore'):\n"
                f"        xc = np.where(x > F32({target.hi_clamp}), F32({target.hi_clamp}), x)\n"
                f"        xc = np.where(xc < F32({target.lo_clamp}), F32({target.lo_clamp}), xc).astype(F32)\n"
                + "\n".join("    " + ln for ln in red.rstrip().split("\n")) + "\n"
                "        k = bits(sh) - 0x4B400000\n"
                "        k1 = k >> 1\n"
                "        p = core(r)\n"
                "        y = (p * f32((k1 + 127) << 23)).astype(F32)\n"
                "        return (y * f32((k - k1 + 127) << 23)).astype(F32)\n")
    if name in ("log", "log2"):
        if name == "log":
            comb = f"        y = fma(ef, {_np_h(R.LN2_F)}, fma(ef, {_np_h(R.LN2_F_LO)}, p))\n"
        else:
            comb = (f"        v = fma(f, {_np_h(R.INVLN2_HI)}, (f * p).astype(F32))\n"
                    "        y = (ef + v).astype(F32)\n")
        return (f"def evoforge_{name}(x):\n"
                "    x = np.asarray(x, F32)\n"
                "    with np.errstate(all='ignore'):\n"
                "        tiny = bits(x) < 0x00800000\n"
                "        ix = bits(np.where(tiny, (x * F32(2.0 ** 23)).astype(F32), x))\n"
                f"        t = (ix - {R.SQRT_HALF_BITS}) & 0xFFFFFFFF\n"
                "        e = np.where(t >= 2 ** 31, t - 2 ** 32, t) >> 23\n"
                "        f = (f32((ix - (e << 23)) & 0xFFFFFFFF) - F32(1.0)).astype(F32)\n"
                "        ef = (e - np.where(tiny, 23, 0)).astype(F32)\n"
                "        p = core(f)\n"
                + comb +
                "        y = np.where(x == np.inf, F32(np.inf), y)\n"
                "        y = np.where(x == 0, F32(-np.inf), y)\n"
                "        return np.where((x < 0) | np.isnan(x), F32(np.nan), y).astype(F32)\n")
    table = ", ".join(f"0x{int(v):08x}" for v in R.INV_PIO4_TABLE)
    flip = "        flip = flip != (bits(x) >= 0x80000000)\n" if target.odd else ""
    return (f"INV_PIO4 = np.array([{table}], np.uint64)\n\n\n"
            "def reduce_large(ax):\n"
            "    xi = np.asarray(ax, F32).view(np.uint32).astype(np.uint64)\n"
            "    idx = ((xi >> np.uint64(26)) & np.uint64(15)).astype(np.int64)\n"
            "    m = ((xi & np.uint64(0xFFFFFF)) | np.uint64(0x800000)) << ((xi >> np.uint64(23)) & np.uint64(7))\n"
            "    res0 = (m * INV_PIO4[idx]) & np.uint64(0xFFFFFFFF)\n"
            "    res0 = ((m * INV_PIO4[idx + 8]) >> np.uint64(32)) | (res0 << np.uint64(32))\n"
            "    res0 = res0 + m * INV_PIO4[idx + 4]\n"
            "    n = (res0 + np.uint64(1 << 61)) >> np.uint64(62)\n"
            "    res0 = res0 - (n << np.uint64(62))\n"
            f"    return res0.view(np.int64).astype(np.float64) * float.fromhex({R.PI63.hex()!r}), n.astype(np.int64)\n\n\n"
            f"def evoforge_{name}(x):\n"
            "    x = np.asarray(x, F32)\n"
            "    with np.errstate(all='ignore'):\n"
            "        ax = np.abs(x)\n"
            f"        sh = fma(ax, {_np_h(R.INV_PIO2_F)}, F32(12582912.0))\n"
            "        kf = (sh - F32(12582912.0)).astype(F32)\n"
            "        n = bits(sh) - 0x4B400000\n"
            f"        r1 = fma(-kf, {_np_h(R.PIO2_C1)}, ax)\n"
            f"        rh = fma(-kf, {_np_h(R.PIO2_C2)}, r1)\n"
            f"        rl = fma(-kf, {_np_h(R.PIO2_C3)}, fma(-kf, {_np_h(R.PIO2_C2)}, (r1 - rh).astype(F32)))\n"
            "        large = ~(ax < F32(120.0))\n"
            "        rb, nb = reduce_large(np.where(large & np.isfinite(x), ax, F32(1000.0)))\n"
            "        n = np.where(large, nb, n)\n"
            "        rbh = rb.astype(F32)\n"
            "        rh = np.where(large, rbh, rh).astype(F32)\n"
            "        rl = np.where(large, (rb - rbh.astype(np.float64)).astype(F32), rl).astype(F32)\n"
            "        p, q2 = core(rh)\n"
            "        z = (rh * rh).astype(F32)\n"
            "        z2, r3, t, hr = ((z * z).astype(F32), (rh * z).astype(F32), (rh * rl).astype(F32),\n"
            "                         (F32(0.5) * rh).astype(F32))\n"
            "        c = (F32(1.0) - fma(rh, hr, fma(-z2, q2, t))).astype(F32)\n"
            "        s = (rh + fma(r3, p, fma(-t, hr, rl))).astype(F32)\n"
            f"        q = (n + {target.quadrant_shift}) & 3\n"
            "        y = np.where(q & 1 == 0, s, c)\n"
            "        flip = (q & 2) != 0\n"
            + flip +
            "        y = np.where(flip, -y, y).astype(F32)\n"
            "        return np.where(np.isfinite(x), y, F32(np.nan)).astype(F32)\n")


def emit_numpy(program: Program, constants: Sequence[float], target: R.Target, note: str = "") -> str:
    head = f'"""evoforge float32 {target.name}, vectorised NumPy, bit-exact with the emitted C. {note}"""\n\n'
    return head + NUMPY_PRELUDE + "\n\n" + _np_core(program, constants, target) + "\n\n" + _np_body(target)


# ---------------------------------------------------------------------------------------------------------------------
# Triton: a @triton.jit device function over a block of float32 values (every target).

def emit_triton(program: Program, constants: Sequence[float], target: R.Target, note: str = "") -> str:
    n_in = target.n_inputs
    lit = lambda v: f"{float(np.float32(v))!r}"  # noqa: E731  (repr round-trips; Triton casts to fp32)
    body = []
    for i, ((op, _), a) in enumerate(zip(program, _operands(program, constants, n_in, lit))):
        expr = {"add": f"{a[0]} + {a[1]}", "sub": f"{a[0]} - {a[1]}", "mul": f"{a[0]} * {a[1]}",
                "div": f"tl.div_rn({a[0]}, {a[1]})"}.get(op) or f"tl.fma({a[0]}, {a[1]}, {a[2]})"
        body.append(f"    {register_name(n_in + i, n_in)} = {expr}")
    out = register_name(n_in + len(program) - 1, n_in)
    name = target.name
    lines = [f'"""evoforge float32 {name} as a Triton device function. {note}\n\n'
             "Compile the calling kernel with enable_fp_fusion=False: a fused a*b + c differs from the verified\n"
             'program. Run on a GPU by bench/ulp_triton_gpu.py; the test suite checks the source parses."""',
             "import triton", "import triton.language as tl", "", "",
             "@triton.jit", f"def evoforge_{name}(x):",
             "    x = x.to(tl.float32)"]
    if name in ("sin", "cos"):
        outs = [register_name(n_in + len(program) - 2 + j, n_in) for j in range(2)]
        return "\n".join(lines + triton_trig.triton_lines(target, body, outs)) + "\n"
    if name == "erf":
        outs = [register_name(n_in + len(program) - 2 + j, n_in) for j in range(2)]
        return "\n".join(lines + EA.triton_erf_lines(body, outs)) + "\n"
    if name == "tanh":
        return "\n".join(lines + EA.triton_tanh_lines(body, out)) + "\n"
    if name == "sigmoid":
        lines += EA.triton_lines(target, name, body, out)
        return "\n".join(lines[:5] + EA.triton_helpers() + lines[5:]) + "\n"
    if name in ("exp", "exp2"):
        lines += [f"    xc = tl.where(x > {target.hi_clamp}, {target.hi_clamp}, x)",
                  f"    xc = tl.where(xc < {target.lo_clamp}, {target.lo_clamp}, xc)"]
        if name == "exp":
            lines += [f"    sh = xc * {float(R.LOG2E)!r} + 12582912.0", "    kf = sh - 12582912.0",
                      f"    r = tl.fma(-kf, {float(R.LN2_HI)!r}, xc)", f"    r = tl.fma(-kf, {float(R.LN2_LO)!r}, r)"]
        else:
            lines += ["    sh = xc + 12582912.0", "    kf = sh - 12582912.0", "    r = xc - kf"]
        lines += body + [f"    p = {out}",
                         "    k = sh.to(tl.int32, bitcast=True) - 0x4B400000", "    k1 = k >> 1",
                         "    y = p * ((k1 + 127) << 23).to(tl.float32, bitcast=True)",
                         "    return y * ((k - k1 + 127) << 23).to(tl.float32, bitcast=True)"]
    else:
        lines += ["    tiny = x < 1.1754943508222875e-38",
                  "    xs = tl.where(tiny, x * 8388608.0, x)", "    ix = xs.to(tl.int32, bitcast=True)",
                  f"    e = (ix - {R.SQRT_HALF_BITS}) >> 23",
                  "    f = (ix - (e << 23)).to(tl.float32, bitcast=True) - 1.0",
                  "    ef = (e - tl.where(tiny, 23, 0)).to(tl.float32)", "    r = f"]
        lines += body + [f"    p = {out}"]
        if name == "log":
            lines += [f"    y = tl.fma(ef, {float(R.LN2_F)!r}, tl.fma(ef, {float(R.LN2_F_LO)!r}, p))"]
        else:
            lines += [f"    v = tl.fma(f, {float(R.INVLN2_HI)!r}, f * p)",
                      "    y = ef + v"]
        lines += ["    y = tl.where(x == float('inf'), x, y)", "    y = tl.where(x == 0.0, float('-inf'), y)",
                  "    return tl.where((x < 0.0) | (x != x), float('nan'), y)"]
    return "\n".join(lines) + "\n"


def emit(program: Program, constants: Sequence[float], target: R.Target, lang: str, note: str = "") -> str:
    return {"c": emit_c, "numpy": emit_numpy, "triton": emit_triton}[lang](program, constants, target, note)
