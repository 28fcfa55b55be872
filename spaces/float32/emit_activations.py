"""Harness source for tanh, sigmoid and erf (`activations.py`) in C, NumPy and Triton: the same float32 and binary64
operations in the same order as the simulation, each rounded once, no contraction, so the emitted code is bit-exact
with it.
`emit.py` wraps these bodies with the program's core and the exported API."""

from __future__ import annotations

import numpy as np

from spaces.float32 import activations as A
from spaces.float32.reduction import LN2_F, LN2_HI, LN2_LO, LOG2E, Target


def _d(v: float) -> str:
    return float(v).hex()


def _f(v) -> str:
    return f"{float(np.float32(v)).hex()}f"


def _bits(v) -> str:
    return f"0x{int(np.float32(v).view(np.uint32)):08X}u"


def c_erf() -> str:
    """Two pieces, both computed, one selected (activations.py: why each step is exact or small)."""
    return ("EF_INLINE float evoforge_erf_inline(float x) {\n"
            "    const uint32_t ix = ef_bits(x), ia = ix & 0x7fffffffu;\n"
            f"    const float a = ef_float(ia < {_bits(A.ERF_CLAMP)} ? ia : {_bits(A.ERF_CLAMP)});"
            "   /* |x| clamped to 3.92, where erf rounds to 1 */\n"
            "    float g, d;\n"
            f"    ef_core(ef_fma(a, a, -{_f(A.ERF_V_CENTRE)}), a - {_f(A.ERF_U_CENTRE)}, &g, &d);"
            "   /* G(a^2 - c) ~ erf(a)/a - 1, D(a - c) ~ erfc(a) */\n"
            f"    const float y = ia < {_bits(A.ERF_SPLIT)} ? ef_fma(a, g, a) : 1.0f - d;\n"
            "    const uint32_t nan = ia > 0x7f800000u ? 0x7fc00000u : 0u;\n"
            "    return ef_float(ef_bits(y) | (ix & 0x80000000u) | nan);      /* erf is odd; NaN stays NaN */\n"
            "}\n")


def c_tanh() -> str:
    """float32 only (activations.py: the double-float steps and why each is exact). Two halves, `_reduce` (x to
    E = e^2|x| - 1 = eh + el and x's sign bit) and `_finish` (E / (E + 2)), which the array loop runs as two passes
    over a block where the call is cache-resident; `_inline` is both."""
    return ("EF_INLINE void evoforge_tanh_reduce(float x, float *eh_out, float *el_out, uint32_t *sign_out) {\n"
            "    const uint32_t ix = ef_bits(x);\n"
            "    const float a = ef_float(ix & 0x7fffffffu);\n"
            f"    const float t = 2.0f * (a > {_f(A.TANH_CLAMP)} ? {_f(A.TANH_CLAMP)} : a);"
            "   /* tanh rounds to 1 beyond; NaN passes */\n"
            f"    const float sh = ef_fma(t, {_f(LOG2E)}, 0x1.8p23f);\n"
            "    const float kf = sh - 0x1.8p23f;\n"
            "    const float pk = ef_float((ef_bits(sh) - 0x4B400000u + 127u) << 23);      /* 2^k */\n"
            f"    const float r = ef_fma(-kf, {_f(LN2_F)}, t);                 /* exact for k <= 1 */\n"
            "    const float q = ef_core(r);                                 /* ~ e^r - 1 - r */\n"
            "    const float b = pk * r, am = pk - 1.0f;\n"
            "    const float e1 = am + b;                                     /* Fast2Sum */\n"
            "    const float w = ef_fma(pk, q, b - (e1 - am));\n"
            "    const float eh = e1 + w;\n"
            "    *el_out = w - (eh - e1);                                    /* E = e^t - 1 = eh + el */\n"
            "    *eh_out = eh;\n"
            "    *sign_out = ix & 0x80000000u;\n"
            "}\n\n"
            "EF_INLINE float evoforge_tanh_finish(float eh, float el, uint32_t sign) {\n"
            "    const float dh = eh + 2.0f, bb = dh - eh;\n"
            "    const float dl = ((eh - (dh - bb)) + (2.0f - bb)) + el;       /* D = E + 2 (TwoSum) */\n"
            "    const float inv = 1.0f / dh;                                 /* the one division */\n"
            "    const float y0 = eh * inv;\n"
            "    const float rho = ef_fma(-y0, dh, eh);                       /* remainder */\n"
            "    const float y = ef_fma(ef_fma(-y0, dl, rho + el), inv, y0);  /* y0 + (E - y0 D)/D */\n"
            "    return ef_float(ef_bits(y) | sign);\n"
            "}\n\n"
            "EF_INLINE float evoforge_tanh_inline(float x) {\n"
            "    float eh, el;\n"
            "    uint32_t sign;\n"
            "    evoforge_tanh_reduce(x, &eh, &el, &sign);\n"
            "    return evoforge_tanh_finish(eh, el, sign);\n"
            "}\n")


def c_body(target: Target, name: str) -> str:
    """`evoforge_NAME_inline(float)`: branch-free (clamps and selects only), so the array loop vectorises."""
    if name == "erf":
        return c_erf()
    if name == "tanh":
        return c_tanh()
    common = ("    const double sh = t * " + _d(A.LOG2E_D) + " + 0x1.8p52;\n"
              "    uint64_t shb; memcpy(&shb, &sh, sizeof shb);\n"
              "    const int32_t k = (int32_t)(uint32_t)shb;\n"
              "    const double kd = sh - 0x1.8p52;\n"
              f"    const double rd = (t - kd * {_d(A.LN2_D_HI)}) - kd * {_d(A.LN2_D_LO)};   /* |rd| <= ln2/2 */\n"
              "    const double q = (double)ef_core((float)rd);          /* ~ e^rd - 1 - rd */\n"
              "    const uint64_t pb = (uint64_t)(int64_t)(k + 1023) << 52;\n"
              "    double p2; memcpy(&p2, &pb, sizeof p2);               /* 2^k */\n")
    return (f"/* |x| >= 80 (1, or subnormal results below -87.3), inf, NaN: binary64, not inlined. */\n"
            f"static float evoforge_{name}_slow(float x) {{\n"
            "    double t = -(double)x;\n"
            f"    t = t > {_d(A.SIGMOID_CLAMP)} ? {_d(A.SIGMOID_CLAMP)} : t;          /* NaN passes */\n"
            f"    t = t < -{_d(A.SIGMOID_CLAMP)} ? -{_d(A.SIGMOID_CLAMP)} : t;\n"
            + common +
            "    const double e = p2 * ((rd + q) + 1.0);               /* e^-x */\n"
            "    return (float)(1.0 / (1.0 + e));\n"
            "}\n\n" + c_sigmoid_fast(name) +
            f"EF_INLINE float evoforge_{name}_inline(float x) {{\n"
            f"    return (ef_bits(x) & 0x7fffffffu) < 0x{A.SIGMOID_FAST_BELOW:08X}u ? evoforge_{name}_fast(x)"
            f" : evoforge_{name}_slow(x);\n"
            "}\n")


def c_sigmoid_fast(name: str) -> str:
    """|x| < 80, float32 only (activations.Sigmoid._fast: why each step is exact). Two halves, `_reduce` (x to r,
    q and the shifter's bits) and `_finish`, which the array loop runs as two passes over a block; `_fast` is both."""
    return ("/* 1/(1 + e^-x) = s/(s + P), s = 2^-k, P = e^r = 1 + r + q = ph + pl; D = s + P as dh + dl (Fast2Sum);\n"
            "   c = 1/dh, y0 = s c = s/dh rounded once (exact scaling), then y0 + (s - y0 D) c. Branch-free. */\n"
            f"EF_INLINE void evoforge_{name}_reduce(float x, float *r_out, float *q_out, uint32_t *sb_out) {{\n"
            "    const float t = -x;\n"
            f"    const float sh = ef_fma(t, {_f(LOG2E)}, 0x1.8p23f);\n"
            "    const float kf = sh - 0x1.8p23f;\n"
            f"    const float r = ef_fma(-kf, {_f(LN2_LO)}, ef_fma(-kf, {_f(LN2_HI)}, t));\n"
            "    *q_out = ef_core(r);                                        /* ~ e^r - 1 - r */\n"
            "    *r_out = r;\n"
            "    *sb_out = ef_bits(sh);\n"
            "}\n\n"
            f"EF_INLINE float evoforge_{name}_finish(float r, float q, uint32_t sb) {{\n"
            "    const float ph1 = 1.0f + r, pl1 = (1.0f - ph1) + r;          /* Fast2Sum */\n"
            "    const float ph = ph1 + q, pl = ((ph1 - ph) + q) + pl1;       /* P = ph + pl */\n"
            "    const float s = ef_float((0x4B400000u + 127u - sb) << 23);   /* 2^-k */\n"
            "    /* s, ph > 0: their bits order as they do, so an unsigned max and min sort them (one vector op each;\n"
            "       the float selects cost gcc two compares more). Equal: either order gives the same sum. */\n"
            "    const uint32_t sb_ = ef_bits(s), pb_ = ef_bits(ph);\n"
            "    const float hi = ef_float(sb_ > pb_ ? sb_ : pb_), lo = ef_float(sb_ > pb_ ? pb_ : sb_);\n"
            "    const float dh = hi + lo, dl = (lo - (dh - hi)) + pl;        /* Fast2Sum: D = dh + dl */\n"
            "    const float c = 1.0f / dh;\n"
            "    const float y0 = s * c;                                     /* = s/dh rounded once */\n"
            "    const float e = ef_fma(-y0, dl, ef_fma(-y0, dh, s));         /* s - y0 (dh + dl) */\n"
            "    return ef_fma(e, c, y0);\n"
            "}\n\n"
            f"EF_INLINE float evoforge_{name}_fast(float x) {{\n"
            "    float r, q;\n"
            "    uint32_t sb;\n"
            f"    evoforge_{name}_reduce(x, &r, &q, &sb);\n"
            f"    return evoforge_{name}_finish(r, q, sb);\n"
            "}\n\n")


def numpy_erf() -> str:
    h = lambda v: f"F32(float.fromhex({float(np.float32(v)).hex()!r}))"  # noqa: E731
    return ("def evoforge_erf(x):\n"
            "    x = np.asarray(x, F32)\n"
            "    with np.errstate(all='ignore'):\n"
            "        xb = x.view(np.uint32)\n"
            "        ia = xb & np.uint32(0x7FFFFFFF)\n"
            f"        a = np.minimum(ia, np.uint32({_bits(A.ERF_CLAMP)[:-1]})).view(F32)\n"
            f"        g, d = core(fma(a, a, -{h(A.ERF_V_CENTRE)}), (a - {h(A.ERF_U_CENTRE)}).astype(F32))\n"
            f"        y = np.where(ia < {_bits(A.ERF_SPLIT)[:-1]}, fma(a, g, a), (F32(1.0) - d).astype(F32)).astype(F32)\n"
            "        nan = np.where(ia > 0x7F800000, np.uint32(0x7FC00000), np.uint32(0))\n"
            "        return (y.view(np.uint32) | (xb & np.uint32(0x80000000)) | nan).view(F32)\n")


def numpy_tanh() -> str:
    h = lambda v: f"F32(float.fromhex({float(np.float32(v)).hex()!r}))"  # noqa: E731
    return ("def evoforge_tanh(x):\n"
            "    x = np.asarray(x, F32)\n"
            "    with np.errstate(all='ignore'):\n"
            "        a = np.abs(x)\n"
            f"        t = (F32(2.0) * np.where(a > {h(A.TANH_CLAMP)}, {h(A.TANH_CLAMP)}, a).astype(F32)).astype(F32)\n"
            f"        sh = fma(t, {h(LOG2E)}, F32(12582912.0))\n"
            "        kf = (sh - F32(12582912.0)).astype(F32)\n"
            "        pk = f32(((bits(sh) - 0x4B400000 + 127) << 23) & 0xFFFFFFFF)\n"
            f"        r = fma(-kf, {h(LN2_F)}, t)\n"
            "        q = np.asarray(core(r), F32)\n"
            "        b = (pk * r).astype(F32)\n"
            "        am = (pk - F32(1.0)).astype(F32)\n"
            "        e1 = (am + b).astype(F32)\n"
            "        w = fma(pk, q, (b - (e1 - am).astype(F32)).astype(F32))\n"
            "        eh = (e1 + w).astype(F32)\n"
            "        el = (w - (eh - e1).astype(F32)).astype(F32)\n"
            "        dh = (eh + F32(2.0)).astype(F32)\n"
            "        bb = (dh - eh).astype(F32)\n"
            "        dl = (((eh - (dh - bb).astype(F32)).astype(F32) + (F32(2.0) - bb).astype(F32)).astype(F32)"
            " + el).astype(F32)\n"
            "        inv = (F32(1.0) / dh).astype(F32)\n"
            "        y0 = (eh * inv).astype(F32)\n"
            "        rho = fma(-y0, dh, eh)\n"
            "        y = fma(fma(-y0, dl, (rho + el).astype(F32)), inv, y0)\n"
            "        return (y.view(np.uint32) | (x.view(np.uint32) & np.uint32(0x80000000))).view(F32)\n")


def numpy_body(target: Target, name: str) -> str:
    if name == "erf":
        return numpy_erf()
    if name == "tanh":
        return numpy_tanh()
    common = (f"        sh = t * {A.LOG2E_D!r} + 6755399441055744.0\n"
              "        k = (sh.view(np.uint64) & np.uint64(0xFFFFFFFF)).astype(np.int64)\n"
              "        k = np.where(k >= 2 ** 31, k - 2 ** 32, k)\n"
              "        kd = sh - 6755399441055744.0\n"
              f"        rd = (t - kd * float.fromhex({_d(A.LN2_D_HI)!r})) - kd * float.fromhex({_d(A.LN2_D_LO)!r})\n"
              "        q = np.asarray(core(rd.astype(F32)), F32).astype(np.float64)\n"
              "        p2 = ((k + 1023).astype(np.uint64) << np.uint64(52)).view(np.float64)\n")
    h = lambda v: f"F32(float.fromhex({float(np.float32(v)).hex()!r}))"  # noqa: E731
    head = (f"def evoforge_{name}(x):\n"
            "    x = np.asarray(x, F32)\n"
            "    with np.errstate(all='ignore'):\n")
    return (head +
            f"        fast = (x.view(np.uint32) & np.uint32(0x7FFFFFFF)) < {A.SIGMOID_FAST_BELOW:#x}\n"
            "        tf = -x\n"
            f"        shf = fma(tf, {h(LOG2E)}, F32(12582912.0))\n"
            "        kf = (shf - F32(12582912.0)).astype(F32)\n"
            f"        rf = fma(-kf, {h(LN2_LO)}, fma(-kf, {h(LN2_HI)}, tf))\n"
            "        t = -x.astype(np.float64)\n"
            f"        t = np.where(t > {A.SIGMOID_CLAMP!r}, {A.SIGMOID_CLAMP!r}, t)\n"
            f"        t = np.where(t < -{A.SIGMOID_CLAMP!r}, -{A.SIGMOID_CLAMP!r}, t)\n"
            + common.replace("core(rd.astype(F32))", "core(np.where(fast, rf, rd.astype(F32)).astype(F32))") +
            "        e = p2 * ((rd + q) + 1.0)\n"
            "        ys = (1.0 / (1.0 + e)).astype(F32)\n"
            "        q = q.astype(F32)\n"
            "        ph1 = (F32(1.0) + rf).astype(F32)\n"
            "        pl1 = ((F32(1.0) - ph1).astype(F32) + rf).astype(F32)\n"
            "        ph = (ph1 + q).astype(F32)\n"
            "        pl = (((ph1 - ph).astype(F32) + q).astype(F32) + pl1).astype(F32)\n"
            "        sb = bits(shf)\n"
            "        s = f32(((0x4B400000 + 127 - sb) << 23) & 0xFFFFFFFF)\n"
            "        hi = np.where(s > ph, s, ph).astype(F32)\n"
            "        lo = np.where(s > ph, ph, s).astype(F32)\n"
            "        dh = (hi + lo).astype(F32)\n"
            "        dl = ((lo - (dh - hi).astype(F32)).astype(F32) + pl).astype(F32)\n"
            "        c = (F32(1.0) / dh).astype(F32)\n"
            "        y0 = (s * c).astype(F32)\n"
            "        e = fma(-y0, dl, fma(-y0, dh, s))\n"
            "        yf = fma(e, c, y0)\n"
            "        return np.where(fast, yf, ys).astype(F32)\n")


def _t64(v: float) -> str:
    """A binary64 constant in Triton source: Python float literals become fp32 there, so build it from its bits."""
    bits = int(np.float64(abs(v)).view(np.uint64))
    return f"{'-' if v < 0 else ''}_f64({bits:#x})"


def triton_helpers() -> list[str]:
    return ["@triton.jit", "def _f64(bits: tl.constexpr):",
            "    return tl.full((1,), bits, tl.int64).to(tl.float64, bitcast=True)", "", ""]


def _tri_tail(y: str) -> list[str]:
    """The sign of x and NaN as bits (ix, ia: x's int32 bits and |x|'s)."""
    return ["    nan = tl.where(ia > 0x7F800000, 0x7FC00000, 0)",
            f"    return ({y}.to(tl.int32, bitcast=True) | (ix & -2147483648) | nan).to(tl.float32, bitcast=True)"]


def triton_tanh_lines(body: list[str], out: str) -> list[str]:
    """tanh's float32 harness in Triton (tl.div_rn: the IEEE division the C and the simulation use)."""
    f = lambda v: repr(float(np.float32(v)))  # noqa: E731
    return (["    ix = x.to(tl.int32, bitcast=True)", "    a = tl.abs(x)",
             f"    t = 2.0 * tl.where(a > {f(A.TANH_CLAMP)}, {f(A.TANH_CLAMP)}, a)",
             f"    sh = tl.fma(t, {f(LOG2E)}, 12582912.0)", "    kf = sh - 12582912.0",
             "    pk = ((sh.to(tl.int32, bitcast=True) - 0x4B400000 + 127) << 23).to(tl.float32, bitcast=True)",
             f"    r = tl.fma(-kf, {f(LN2_F)}, t)"]
            + body +
            [f"    q = {out}",
             "    b = pk * r", "    am = pk - 1.0", "    e1 = am + b", "    w = tl.fma(pk, q, b - (e1 - am))",
             "    eh = e1 + w", "    el = w - (eh - e1)",
             "    dh = eh + 2.0", "    bb = dh - eh", "    dl = ((eh - (dh - bb)) + (2.0 - bb)) + el", "    inv = tl.div_rn(1.0, dh)",
             "    y0 = eh * inv", "    rho = tl.fma(-y0, dh, eh)", "    y = tl.fma(tl.fma(-y0, dl, rho + el), inv, y0)",
             "    return (y.to(tl.int32, bitcast=True) | (ix & -2147483648)).to(tl.float32, bitcast=True)"])


def triton_lines(target: Target, name: str, body: list[str], out: str) -> list[str]:
    """sigmoid: lines of the @triton.jit function after `x = x.to(tl.float32)`; `body` computes `out` from `r`.
    The float32 path runs on every lane; the binary64 path (|x| >= 80, inf, NaN: the C code's side loop) only in a
    block that holds such a lane (a uniform branch), where the program is evaluated again at its argument."""
    f = lambda v: repr(float(np.float32(v)))  # noqa: E731
    lines = [f"    fast = (x.to(tl.uint32, bitcast=True) & 0x7FFFFFFF) < {A.SIGMOID_FAST_BELOW:#x}",
             "    tf = -x",
             f"    shf = tl.fma(tf, {f(LOG2E)}, 12582912.0)", "    kf = shf - 12582912.0",
             f"    rf = tl.fma(-kf, {f(LN2_LO)}, tl.fma(-kf, {f(LN2_HI)}, tf))",
             "    r = rf"]
    lines += body
    lines += [f"    q = {out}",
              "    ph1 = 1.0 + rf", "    pl1 = (1.0 - ph1) + rf", "    ph = ph1 + q", "    pl = ((ph1 - ph) + q) + pl1",
              "    sb = shf.to(tl.int32, bitcast=True)",
              "    s = ((0x4B400000 + 127 - sb) << 23).to(tl.float32, bitcast=True)",
              "    hi = tl.where(s > ph, s, ph)", "    lo = tl.where(s > ph, ph, s)",
              "    dh = hi + lo", "    dl = (lo - (dh - hi)) + pl",
              "    c = tl.div_rn(1.0, dh)", "    y0 = s * c", "    ee = tl.fma(-y0, dl, tl.fma(-y0, dh, s))",
              "    y = tl.fma(ee, c, y0)",
              "    if tl.max((~fast).to(tl.int32)) > 0:",
              "        t = -(x.to(tl.float64))", f"        t = tl.where(t > {A.SIGMOID_CLAMP!r}, {A.SIGMOID_CLAMP!r}, t)",
              f"        t = tl.where(t < -{A.SIGMOID_CLAMP!r}, -{A.SIGMOID_CLAMP!r}, t)",
              f"        sh = t * {_t64(A.LOG2E_D)} + 6755399441055744.0",
              "        k = (sh.to(tl.int64, bitcast=True) & 0xFFFFFFFF).to(tl.int32)",
              "        kd = sh - 6755399441055744.0",
              f"        rd = (t - kd * {_t64(A.LN2_D_HI)}) - kd * {_t64(A.LN2_D_LO)}",
              "        r = rd.to(tl.float32)"]
    lines += ["    " + line for line in body]
    lines += [f"        q = {out}",
              "        p2 = ((k.to(tl.int64) + 1023) << 52).to(tl.float64, bitcast=True)",
              "        e = p2 * ((rd + q.to(tl.float64)) + 1.0)", "        ys = (1.0 / (1.0 + e)).to(tl.float32)",
              "        y = tl.where(fast, y, ys)",
              "    return y"]
    return lines


def triton_erf_lines(body: list[str], outs: list[str]) -> list[str]:
    f = lambda v: repr(float(np.float32(v)))  # noqa: E731
    clamp = int(np.float32(A.ERF_CLAMP).view(np.uint32))
    return (["    ix = x.to(tl.int32, bitcast=True)", "    ia = ix & 0x7FFFFFFF",
             f"    a = tl.where(ia < {clamp:#x}, ia, {clamp:#x}).to(tl.float32, bitcast=True)",
             f"    r = tl.fma(a, a, -{f(A.ERF_V_CENTRE)})", f"    r1 = a - {f(A.ERF_U_CENTRE)}"]
            + body +
            [f"    y = tl.where(ia < {int(np.float32(A.ERF_SPLIT).view(np.uint32)):#x}, tl.fma(a, {outs[0]}, a), "
             f"1.0 - {outs[1]})"]
            + _tri_tail("y"))
