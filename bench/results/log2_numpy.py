"""evoforge float32 log2, vectorised NumPy, bit-exact with the emitted C. Origin: search:ulp_search_log2_struct; max ULP 0.9746 on 2097242 sampled inputs."""

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
    v1 = np.asarray((r * r), F32)
    v2 = np.asarray(fma(v1, F32(float.fromhex('0x1.80a9bc0000000p-3')), F32(float.fromhex('0x1.a2663e0000000p-3'))), F32)
    v3 = np.asarray(fma(v2, v1, F32(float.fromhex('0x1.2782f20000000p-2'))), F32)
    v4 = np.asarray(fma(v3, v1, F32(float.fromhex('0x1.ec707a0000000p-2'))), F32)
    v5 = np.asarray(fma(v4, v1, F32(float.fromhex('0x1.5b5c300000000p-26'))), F32)
    v6 = np.asarray(fma(v1, F32(float.fromhex('-0x1.ceb8c40000000p-4')), F32(float.fromhex('-0x1.8660640000000p-3'))), F32)
    v7 = np.asarray(fma(v6, v1, F32(float.fromhex('-0x1.eac6960000000p-3'))), F32)
    v8 = np.asarray(fma(v7, v1, F32(float.fromhex('-0x1.715a660000000p-2'))), F32)
    v9 = np.asarray(fma(v8, v1, F32(float.fromhex('-0x1.7154700000000p-1'))), F32)
    v10 = np.asarray(fma(r, v9, v5), F32)
    return v10


def evoforge_log2(x):
    x = np.asarray(x, F32)
    with np.errstate(all='ignore'):
        tiny = bits(x) < 0x00800000
        ix = bits(np.where(tiny, (x * F32(2.0 ** 23)).astype(F32), x))
        t = (ix - 1060439283) & 0xFFFFFFFF
        e = np.where(t >= 2 ** 31, t - 2 ** 32, t) >> 23
        f = (f32((ix - (e << 23)) & 0xFFFFFFFF) - F32(1.0)).astype(F32)
        ef = (e - np.where(tiny, 23, 0)).astype(F32)
        p = core(f)
        v = fma(f, F32(float.fromhex('0x1.7154760000000p+0')), (f * p).astype(F32))
        y = (ef + v).astype(F32)
        y = np.where(x == np.inf, F32(np.inf), y)
        y = np.where(x == 0, F32(-np.inf), y)
        return np.where((x < 0) | np.isnan(x), F32(np.nan), y).astype(F32)
