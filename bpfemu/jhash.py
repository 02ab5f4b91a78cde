"""Bob Jenkins' lookup3 hash (public domain), as the kernel's jhash()/jhash2() compute it.

The hash table maps place keys in buckets by this hash; with BPF_F_ZERO_SEED
the seed is 0 and the kernel's iteration order becomes reproducible, so the
emulator computes the very same values (on a little-endian kernel).
"""
JHASH_INITVAL = 0xDEADBEEF
M = 0xFFFFFFFF


def _rol(x, k):
    return ((x << k) | (x >> (32 - k))) & M


def _mix(a, b, c):
    a = (a - c) & M; a ^= _rol(c, 4); c = (c + b) & M
    b = (b - a) & M; b ^= _rol(a, 6); a = (a + c) & M
    c = (c - b) & M; c ^= _rol(b, 8); b = (b + a) & M
    a = (a - c) & M; a ^= _rol(c, 16); c = (c + b) & M
    b = (b - a) & M; b ^= _rol(a, 19); a = (a + c) & M
    c = (c - b) & M; c ^= _rol(b, 4); b = (b + a) & M
    return a, b, c


def _final(a, b, c):
    c ^= b; c = (c - _rol(b, 14)) & M
    a ^= c; a = (a - _rol(c, 11)) & M
    b ^= a; b = (b - _rol(a, 25)) & M
    c ^= b; c = (c - _rol(b, 16)) & M
    a ^= c; a = (a - _rol(c, 4)) & M
    b ^= a; b = (b - _rol(a, 14)) & M
    c ^= b; c = (c - _rol(b, 24)) & M
    return c


def _words(data, i):
    return (int.from_bytes(data[i:i + 4], "little"), int.from_bytes(data[i + 4:i + 8], "little"),
            int.from_bytes(data[i + 8:i + 12], "little"))


def jhash(data, initval=0):
    """jhash(key, length, initval) over bytes."""
    n = len(data)
    a = b = c = (JHASH_INITVAL + n + initval) & M
    i = 0
    while n - i > 12:
        x, y, z = _words(data, i)
        a, b, c = _mix((a + x) & M, (b + y) & M, (c + z) & M)
        i += 12
    if n - i == 0:
        return c
    x, y, z = _words(data, i)  # short reads zero-fill: the tail bytes, little-endian
    return _final((a + x) & M, (b + y) & M, (c + z) & M)


def jhash2(data, initval=0):
    """jhash2(u32 *k, length in words, initval) over bytes whose length is a multiple of 4."""
    n = len(data) // 4
    a = b = c = (JHASH_INITVAL + (n << 2) + initval) & M
    i = 0
    while n > 3:
        x, y, z = _words(data, i)
        a, b, c = _mix((a + x) & M, (b + y) & M, (c + z) & M)
        i += 12
        n -= 3
    if n == 0:
        return c
    x, y, z = _words(data, i)
    if n < 3:
        z = 0
    if n < 2:
        y = 0
    return _final((a + x) & M, (b + y) & M, (c + z) & M)


def htab_map_hash(key, seed):
    """The hash table's choice: jhash2 for keys that are whole words, else jhash."""
    if len(key) & 3 == 0:
        return jhash2(key, seed)
    return jhash(key, seed)
