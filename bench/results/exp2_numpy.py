"""evoforge float32 exp2, vectorised NumPy, bit-exact with the emitted C. Origin: search:ulp_search_exp2_struct; max ULP 0.8450 on 2099972 sampled inputs."""

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


def core(r):
    v1 = np.asarray(fma(r, F32(float.fromhex('0x1.414ec60000000p-13')), F32(float.fromhex('0x1.5f03d80000000p-10'))), F32)
    v2 = np.asarray(fma(v1, r, F32(float.fromhex('0x1.3b2e0c0000000p-7'))), F32)
    v3 = np.asarray(fma(v2, r, F32(float.fromhex('0x1.c6af840000000p-5'))), F32)
    v4 = np.asarray(fma(v3, r, F32(float.fromhex('0x1.ebfbdc0000000p-3'))), F32)
    v5 = np.asarray(fma(v4, r, F32(float.fromhex('0x1.62e4300000000p-1'))), F32)
    v6 = np.asarray(fma(v5, r, F32(float.fromhex('0x1.0000000000000p+0'))), F32)
    return v6


def evoforge_exp2(x):
    x = np.asarray(x, F32)
    with np.errstate(all='ignore'):
        xc = np.where(x > F32(129.0), F32(129.0), x)
        xc = np.where(xc < F32(-151.0), F32(-151.0), xc).astype(F32)
        sh = (xc + F32(12582912.0)).astype(F32)
        kf = (sh - F32(12582912.0)).astype(F32)
        r = (xc - kf).astype(F32)
        k = bits(sh) - 0x4B400000
        k1 = k >> 1
        p = core(r)
        y = (p * f32((k1 + 127) << 23)).astype(F32)
        return (y * f32((k - k1 + 127) << 23)).astype(F32)
