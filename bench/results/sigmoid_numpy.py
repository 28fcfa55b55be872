"""evoforge float32 sigmoid, vectorised NumPy, bit-exact with the emitted C. Origin: search:ulp_search_sigmoid_struct; max ULP 0.8027 on 2098112 sampled inputs."""

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
    v2 = np.asarray(fma(v1, F32(float.fromhex('0x1.6c69ec0000000p-10')), F32(float.fromhex('0x1.5555be0000000p-5'))), F32)
    v3 = np.asarray(fma(v2, v1, F32(float.fromhex('0x1.0000000000000p-1'))), F32)
    v4 = np.asarray(fma(v1, F32(float.fromhex('0x1.120b4a0000000p-7')), F32(float.fromhex('0x1.5554de0000000p-3'))), F32)
    v5 = np.asarray(fma(r, v4, v3), F32)
    v6 = np.asarray((v1 * v5), F32)
    return v6


def evoforge_sigmoid(x):
    x = np.asarray(x, F32)
    with np.errstate(all='ignore'):
        fast = (x.view(np.uint32) & np.uint32(0x7FFFFFFF)) < 0x42a00000
        tf = -x
        shf = fma(tf, F32(float.fromhex('0x1.7154760000000p+0')), F32(12582912.0))
        kf = (shf - F32(12582912.0)).astype(F32)
        rf = fma(-kf, F32(float.fromhex('-0x1.bd01060000000p-13')), fma(-kf, F32(float.fromhex('0x1.6300000000000p-1')), tf))
        t = -x.astype(np.float64)
        t = np.where(t > 120.0, 120.0, t)
        t = np.where(t < -120.0, -120.0, t)
        sh = t * 1.4426950408889634 + 6755399441055744.0
        k = (sh.view(np.uint64) & np.uint64(0xFFFFFFFF)).astype(np.int64)
        k = np.where(k >= 2 ** 31, k - 2 ** 32, k)
        kd = sh - 6755399441055744.0
        rd = (t - kd * float.fromhex('0x1.62e42fef00000p-1')) - kd * float.fromhex('0x1.473de6af278edp-34')
        q = np.asarray(core(np.where(fast, rf, rd.astype(F32)).astype(F32)), F32).astype(np.float64)
        p2 = ((k + 1023).astype(np.uint64) << np.uint64(52)).view(np.float64)
        e = p2 * ((rd + q) + 1.0)
        ys = (1.0 / (1.0 + e)).astype(F32)
        q = q.astype(F32)
        ph1 = (F32(1.0) + rf).astype(F32)
        pl1 = ((F32(1.0) - ph1).astype(F32) + rf).astype(F32)
        ph = (ph1 + q).astype(F32)
        pl = (((ph1 - ph).astype(F32) + q).astype(F32) + pl1).astype(F32)
        sb = bits(shf)
        s = f32(((0x4B400000 + 127 - sb) << 23) & 0xFFFFFFFF)
        hi = np.where(s > ph, s, ph).astype(F32)
        lo = np.where(s > ph, ph, s).astype(F32)
        dh = (hi + lo).astype(F32)
        dl = ((lo - (dh - hi).astype(F32)).astype(F32) + pl).astype(F32)
        c = (F32(1.0) / dh).astype(F32)
        y0 = (s * c).astype(F32)
        e = fma(-y0, dl, fma(-y0, dh, s))
        yf = fma(e, c, y0)
        return np.where(fast, yf, ys).astype(F32)
