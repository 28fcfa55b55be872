"""evoforge float32 tanh, vectorised NumPy, bit-exact with the emitted C. Origin: classic; max ULP 0.9443 on 2097522 sampled inputs."""

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
    v2 = np.asarray(fma(r, F32(float.fromhex('0x1.6c683e0000000p-10')), F32(float.fromhex('0x1.120b4a0000000p-7'))), F32)
    v3 = np.asarray(fma(v2, r, F32(float.fromhex('0x1.5555b80000000p-5'))), F32)
    v4 = np.asarray(fma(v3, r, F32(float.fromhex('0x1.5554de0000000p-3'))), F32)
    v5 = np.asarray(fma(v4, r, F32(float.fromhex('0x1.fffffe0000000p-2'))), F32)
    v6 = np.asarray((v1 * v5), F32)
    return v6


def evoforge_tanh(x):
    x = np.asarray(x, F32)
    with np.errstate(all='ignore'):
        a = np.abs(x)
        t = 2.0 * np.where(a > F32(9.5), F32(9.5), a).astype(F32).astype(np.float64)
        sh = t * 1.4426950408889634 + 6755399441055744.0
        k = (sh.view(np.uint64) & np.uint64(0xFFFFFFFF)).astype(np.int64)
        k = np.where(k >= 2 ** 31, k - 2 ** 32, k)
        kd = sh - 6755399441055744.0
        rd = (t - kd * float.fromhex('0x1.62e42fef00000p-1')) - kd * float.fromhex('0x1.473de6af278edp-34')
        q = np.asarray(core(rd.astype(F32)), F32).astype(np.float64)
        p2 = ((k + 1023).astype(np.uint64) << np.uint64(52)).view(np.float64)
        e = p2 * (rd + q) + (p2 - 1.0)
        y = (e / (e + 2.0)).astype(F32)
        y = (y.view(np.uint32) | (x.view(np.uint32) & np.uint32(0x80000000))).view(F32)
        return np.where(a < F32(2.0 ** -12), x, y).astype(F32)
