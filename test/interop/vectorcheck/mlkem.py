"""ML-KEM-768, written from FIPS 203 (August 2024) in plain Python: Debian 12 packages no ML-KEM
(its OpenSSL 3.0 and python3-cryptography 38 have none; no liboqs). Slow (tens of ms per
operation) and not constant-time: a checker only. Checked by selftest.py against C2SP's CCTV
intermediate values (which follow FIPS 203 ipd: the only difference in these algorithms is the
k byte appended to d in K-PKE.KeyGen, `final=False` below) and, for the final standard, Go's
accumulated hash (`selftest.mlkem_accumulated`; docs/vectors/README.md, "The checker")."""
import hashlib

Q = 3329
N = 256
K = 3
ETA1 = ETA2 = 2
DU, DV = 10, 4


def _bitrev7(i):
    return int("{:07b}".format(i)[::-1], 2)


ZETAS = [pow(17, _bitrev7(i), Q) for i in range(128)]
GAMMAS = [pow(17, 2 * _bitrev7(i) + 1, Q) for i in range(128)]


def ntt(f):  # Algorithm 9
    f = list(f)
    i = 1
    ln = 128
    while ln >= 2:
        for start in range(0, N, 2 * ln):
            z = ZETAS[i]
            i += 1
            for j in range(start, start + ln):
                t = z * f[j + ln] % Q
                f[j + ln] = (f[j] - t) % Q
                f[j] = (f[j] + t) % Q
        ln //= 2
    return f


def intt(f):  # Algorithm 10
    f = list(f)
    i = 127
    ln = 2
    while ln <= 128:
        for start in range(0, N, 2 * ln):
            z = ZETAS[i]
            i -= 1
            for j in range(start, start + ln):
                t = f[j]
                f[j] = (t + f[j + ln]) % Q
                f[j + ln] = z * (f[j + ln] - t) % Q
        ln *= 2
    return [x * 3303 % Q for x in f]


def mul_ntt(f, g):  # Algorithms 11 and 12
    h = [0] * N
    for i in range(128):
        a0, a1, b0, b1 = f[2 * i], f[2 * i + 1], g[2 * i], g[2 * i + 1]
        h[2 * i] = (a0 * b0 + a1 * b1 * GAMMAS[i]) % Q
        h[2 * i + 1] = (a0 * b1 + a1 * b0) % Q
    return h


def add(f, g):
    return [(a + b) % Q for a, b in zip(f, g)]


def sub(f, g):
    return [(a - b) % Q for a, b in zip(f, g)]


def encode(f, d):  # Algorithm 5, ByteEncode_d: coefficient i is bits i*d .. i*d+d-1, little-endian
    v = 0
    for i, x in enumerate(f):
        v |= x << (i * d)
    return v.to_bytes(32 * d, "little")


def decode(b, d):  # Algorithm 6, ByteDecode_d (mod q for d = 12)
    v = int.from_bytes(b, "little")
    m = (1 << d) - 1
    f = [(v >> (i * d)) & m for i in range(N)]
    return [x % Q for x in f] if d == 12 else f


def compress(f, d):  # §4.2.1: round(2^d / q * x) mod 2^d
    return [((x << (d + 1)) + Q) // (2 * Q) % (1 << d) for x in f]


def decompress(f, d):  # round(q / 2^d * y)
    return [(Q * y + (1 << (d - 1))) >> d for y in f]


def sample_ntt(seed):  # Algorithm 7, XOF = SHAKE128
    n = 840
    while True:
        b = hashlib.shake_128(seed).digest(n)
        a = []
        for p in range(0, n - 2, 3):
            d1 = b[p] + 256 * (b[p + 1] % 16)
            d2 = b[p + 1] // 16 + 16 * b[p + 2]
            if d1 < Q:
                a.append(d1)
            if d2 < Q and len(a) < N:
                a.append(d2)
            if len(a) == N:
                return a
        n *= 2  # an "unlucky" seed: read more of the same stream


def cbd(b, eta):  # Algorithm 8: x = the sum of bits 2iη .. 2iη+η-1, y = of the next η bits
    v = int.from_bytes(b, "little")
    m = (1 << eta) - 1
    f = []
    for i in range(N):
        w = v >> (2 * i * eta)
        f.append(((w & m).bit_count() - ((w >> eta) & m).bit_count()) % Q)
    return f


def prf(s, b, eta):
    return hashlib.shake_256(s + bytes([b])).digest(64 * eta)


def G(x):
    o = hashlib.sha3_512(x).digest()
    return o[:32], o[32:]


def H(x):
    return hashlib.sha3_256(x).digest()


def J(x):
    return hashlib.shake_256(x).digest(32)


def _matrix(rho):  # Â[i][j] = SampleNTT(ρ ‖ j ‖ i)
    return [[sample_ntt(rho + bytes([j, i])) for j in range(K)] for i in range(K)]


def pke_keygen(d, final=True):  # Algorithm 13
    rho, sigma = G(d + bytes([K]) if final else d)
    a = _matrix(rho)
    s = [cbd(prf(sigma, i, ETA1), ETA1) for i in range(K)]
    e = [cbd(prf(sigma, K + i, ETA1), ETA1) for i in range(K)]
    sh = [ntt(x) for x in s]
    eh = [ntt(x) for x in e]
    th = []
    for i in range(K):
        acc = eh[i]
        for j in range(K):
            acc = add(acc, mul_ntt(a[i][j], sh[j]))
        th.append(acc)
    return b"".join(encode(t, 12) for t in th) + rho, b"".join(encode(x, 12) for x in sh)


def pke_encrypt(ek, m, r):  # Algorithm 14
    th = [decode(ek[384 * i : 384 * (i + 1)], 12) for i in range(K)]
    a = _matrix(ek[384 * K :])
    y = [cbd(prf(r, i, ETA1), ETA1) for i in range(K)]
    e1 = [cbd(prf(r, K + i, ETA2), ETA2) for i in range(K)]
    e2 = cbd(prf(r, 2 * K, ETA2), ETA2)
    yh = [ntt(x) for x in y]
    u = []
    for i in range(K):
        acc = [0] * N
        for j in range(K):
            acc = add(acc, mul_ntt(a[j][i], yh[j]))
        u.append(add(intt(acc), e1[i]))
    mu = decompress(decode(m, 1), 1)
    acc = [0] * N
    for j in range(K):
        acc = add(acc, mul_ntt(th[j], yh[j]))
    v = add(add(intt(acc), e2), mu)
    return b"".join(encode(compress(x, DU), DU) for x in u) + encode(compress(v, DV), DV)


def pke_decrypt(dk, c):  # Algorithm 15
    u = [decompress(decode(c[32 * DU * i : 32 * DU * (i + 1)], DU), DU) for i in range(K)]
    v = decompress(decode(c[32 * DU * K :], DV), DV)
    sh = [decode(dk[384 * i : 384 * (i + 1)], 12) for i in range(K)]
    acc = [0] * N
    for i in range(K):
        acc = add(acc, mul_ntt(sh[i], ntt(u[i])))
    return encode(compress(sub(v, intt(acc)), 1), 1)


def keygen(d, z, final=True):  # Algorithm 16, ML-KEM.KeyGen_internal: (ek, dk)
    ek, dk_pke = pke_keygen(d, final)
    return ek, dk_pke + ek + H(ek) + z


def ek_valid(ek):  # §7.2 input checks: type and modulus
    return len(ek) == 384 * K + 32 and all(
        encode(decode(ek[384 * i : 384 * (i + 1)], 12), 12) == ek[384 * i : 384 * (i + 1)] for i in range(K))


def encaps(ek, m):  # Algorithm 17, ML-KEM.Encaps_internal: (shared secret, ciphertext)
    k, r = G(m + H(ek))
    return k, pke_encrypt(ek, m, r)


def decaps(dk, c):  # Algorithm 18, ML-KEM.Decaps_internal (implicit rejection)
    dk_pke, ek = dk[: 384 * K], dk[384 * K : 768 * K + 32]
    h, z = dk[768 * K + 32 : 768 * K + 64], dk[768 * K + 64 :]
    m = pke_decrypt(dk_pke, c)
    k, r = G(m + h)
    return k if pke_encrypt(ek, m, r) == c else J(z + c)
