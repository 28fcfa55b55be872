"""evoforge float32 tanh, vectorised NumPy, bit-exact with the emitted C. Origin: search:ulp_search_tanh_struct; max ULP 0.6934 on 2097522 sampled inputs."""

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
    v2 = np.asarray(fma(r, F32(float.fromhex('0x1.a052f20000000p-13')), F32(float.fromhex('0x1.6d2d7c0000000p-10'))), F32)
    v3 = np.asarray(fma(v2, r, F32(float.fromhex('0x1.11114e0000000p-7'))), F32)
    v4 = np.asarray(fma(v3, r, F32(float.fromhex('0x1.5555060000000p-5'))), F32)
    v5 = np.asarray(fma(v4, r, F32(float.fromhex('0x1.5555520000000p-3'))), F32)
    v6 = np.asarray(fma(v5, r, F32(float.fromhex('0x1.0000000000000p-1'))), F32)
    v7 = np.asarray((v1 * v6), F32)
    return v7


def evoforge_tanh(x):
    x = np.asarray(x, F32)
    with np.errstate(all='ignore'):
        a = np.abs(x)
        t = (F32(2.0) * np.where(a > F32(float.fromhex('0x1.3000000000000p+3')), F32(float.fromhex('0x1.3000000000000p+3')), a).astype(F32)).astype(F32)
        sh = fma(t, F32(float.fromhex('0x1.7154760000000p+0')), F32(12582912.0))
        kf = (sh - F32(12582912.0)).astype(F32)
        pk = f32(((bits(sh) - 0x4B400000 + 127) << 23) & 0xFFFFFFFF)
        r = fma(-kf, F32(float.fromhex('0x1.62e4300000000p-1')), t)
        q = np.asarray(core(r), F32)
        b = (pk * r).astype(F32)
        am = (pk - F32(1.0)).astype(F32)
        e1 = (am + b).astype(F32)
        w = fma(pk, q, (b - (e1 - am).astype(F32)).astype(F32))
        eh = (e1 + w).astype(F32)
        el = (w - (eh - e1).astype(F32)).astype(F32)
        dh = (eh + F32(2.0)).astype(F32)
        bb = (dh - eh).astype(F32)
        dl = (((eh - (dh - bb).astype(F32)).astype(F32) + (F32(2.0) - bb).astype(F32)).astype(F32) + el).astype(F32)
        inv = (F32(1.0) / dh).astype(F32)
        y0 = (eh * inv).astype(F32)
        rho = fma(-y0, dh, eh)
        y = fma(fma(-y0, dl, (rho + el).astype(F32)), inv, y0)
        return (y.view(np.uint32) | (x.view(np.uint32) & np.uint32(0x80000000))).view(F32)
