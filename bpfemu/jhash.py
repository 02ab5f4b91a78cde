"""Bob Jenkins' lookup3 hash (public domain), as the kernel's jhash()/jhash2() compute it.

The hash table maps place keys in buckets by this hash; with BPF_F_ZERO_SEED
the seed is 0 and the kernel's iteration order becomes reproducible, so the
emulator computes the very same values (on a little-endian kernel).

On a little-endian machine jhash2 over n words equals jhash over the same 4n
bytes: both start from JHASH_INITVAL + byte length + seed, mix whole 12-byte
blocks while more than 12 bytes remain, and finish the last 1-12 bytes (zero
filled) the same way. So one implementation serves both. It is written for
speed in pure Python (the hash of every new key goes through it): the words
are unpacked with one precompiled struct per length, and the mixing rounds
are inlined.
"""
import struct
import sys as _sys

JHASH_INITVAL = 0xDEADBEEF
M = 0xFFFFFFFF

_unpackers = {}  # padded length -> struct.Struct("<nI").unpack


def _unpacker(n):
    u = _unpackers.get(n)
    if u is None:
        u = _unpackers[n] = struct.Struct("<%dI" % (n // 4)).unpack
    return u


def jhash(data, initval=0):
    """jhash(key, length, initval) over bytes."""
    n = len(data)
    c = (JHASH_INITVAL + n + initval) & M
    if n <= 12:  # no mixing round: the (zero-filled) words go straight to the final
        if n == 0:
            return c
        x = int.from_bytes(data, "little")
        a = (c + (x & M)) & M
        b = (c + ((x >> 32) & M)) & M
        c = (c + (x >> 64)) & M
    else:
        r = n % 12
        if r:  # the tail is read as zero-filled little-endian words
            data = bytes(data) + bytes(12 - r)
            n += 12 - r
        u = _unpackers.get(n)
        if u is None:
            u = _unpacker(n)
        w = u(data)
        a = b = c
        last = len(w) - 3
        i = 0
        while i < last:
            a = (a + w[i]) & M
            b = (b + w[i + 1]) & M
            c = (c + w[i + 2]) & M
            # __jhash_mix
            a = (a - c) & M; a ^= ((c << 4) | (c >> 28)) & M; c = (c + b) & M
            b = (b - a) & M; b ^= ((a << 6) | (a >> 26)) & M; a = (a + c) & M
            c = (c - b) & M; c ^= ((b << 8) | (b >> 24)) & M; b = (b + a) & M
            a = (a - c) & M; a ^= ((c << 16) | (c >> 16)) & M; c = (c + b) & M
            b = (b - a) & M; b ^= ((a << 19) | (a >> 13)) & M; a = (a + c) & M
            c = (c - b) & M; c ^= ((b << 4) | (b >> 28)) & M; b = (b + a) & M
            i += 3
        a = (a + w[last]) & M
        b = (b + w[last + 1]) & M
        c = (c + w[last + 2]) & M
    # __jhash_final
    c ^= b; c = (c - ((b << 14) | (b >> 18))) & M
    a ^= c; a = (a - ((c << 11) | (c >> 21))) & M
    b ^= a; b = (b - ((a << 25) | (a >> 7))) & M
    c ^= b; c = (c - ((b << 16) | (b >> 16))) & M
    a ^= c; a = (a - ((c << 4) | (c >> 28))) & M
    b ^= a; b = (b - ((a << 14) | (a >> 18))) & M
    c ^= b; c = (c - ((b << 24) | (b >> 8))) & M
    return c


def jhash2(data, initval=0):
    """jhash2(u32 *k, length in words, initval) over bytes whose length is a multiple of 4."""
    return jhash(data[:len(data) & ~3], initval)


# The hash table's choice: jhash2 for keys that are whole words, else jhash. They give the
# same value (see the module docstring), so the table calls jhash directly.
htab_map_hash = jhash


# -- many keys at once ---------------------------------------------------------------------------------
# The hash of every key of a batch, computed on all of them together: each key's 32-bit words sit in a
# 64-bit lane of one big Python int, and every step of the hash is a handful of operations on the whole
# int (C loops over all lanes) instead of a Python expression per key. A lane never carries into the
# next: sums of two 32-bit values need 33 bits, a difference is taken as x + 2**32 - y, and rotations
# shift by less than 32 inside a 64-bit lane; after each step the lanes are masked back to 32 bits.

_LANES = {}  # lane count -> (mask of the low 32 bits of every lane, 1 in every lane), for small counts
_LANES_KEPT = 4096  # bigger ones are made per call (16 bytes per lane: a cache of them would hold megabytes)


def _lanes(count):
    m = _LANES.get(count)
    if m is None:
        m = (int.from_bytes(b"\xff\xff\xff\xff\0\0\0\0" * count, "little"),
             int.from_bytes(b"\1\0\0\0\0\0\0\0" * count, "little"))
        if count <= _LANES_KEPT:
            if len(_LANES) > 8:
                _LANES.clear()
            _LANES[count] = m
    return m


def jhash_many(data, key_len, count, initval=0):
    """[jhash(key, key_len, initval) of each of the ``count`` keys of ``key_len`` bytes laid end to end in
    ``data``] (the same values as :func:`jhash`, computed on all keys together)."""
    if count == 0:
        return []
    if key_len == 0:
        return [jhash(b"", initval)] * count
    mask, ones = _lanes(count)
    padded = (key_len + 11) // 12 * 12
    nwords = padded // 4
    data = bytes(memoryview(data)[:key_len * count])
    size = 8 * count

    def lane(j):  # word j of every key, one per 64-bit lane (bytes past a key's end are zeros)
        buf = bytearray(size)
        for t in range(4):
            pos = 4 * j + t
            if pos < key_len:
                buf[t::8] = data[pos::key_len]
        return int.from_bytes(buf, "little")

    two32 = ones << 32
    c0 = (JHASH_INITVAL + key_len + initval) & M
    a = b = c = c0 * ones

    def rol(x, k):
        return ((x << k) | (x >> (32 - k))) & mask

    last = nwords - 3
    i = 0
    while i < last:
        a = (a + lane(i)) & mask
        b = (b + lane(i + 1)) & mask
        c = (c + lane(i + 2)) & mask
        a = (a + two32 - c) & mask; a ^= rol(c, 4); c = (c + b) & mask
        b = (b + two32 - a) & mask; b ^= rol(a, 6); a = (a + c) & mask
        c = (c + two32 - b) & mask; c ^= rol(b, 8); b = (b + a) & mask
        a = (a + two32 - c) & mask; a ^= rol(c, 16); c = (c + b) & mask
        b = (b + two32 - a) & mask; b ^= rol(a, 19); a = (a + c) & mask
        c = (c + two32 - b) & mask; c ^= rol(b, 4); b = (b + a) & mask
        i += 3
    a = (a + lane(last)) & mask
    b = (b + lane(last + 1)) & mask
    c = (c + lane(last + 2)) & mask
    c ^= b; c = (c + two32 - rol(b, 14)) & mask
    a ^= c; a = (a + two32 - rol(c, 11)) & mask
    b ^= a; b = (b + two32 - rol(a, 25)) & mask
    c ^= b; c = (c + two32 - rol(b, 16)) & mask
    a ^= c; a = (a + two32 - rol(c, 4)) & mask
    b ^= a; b = (b + two32 - rol(a, 14)) & mask
    c ^= b; c = (c + two32 - rol(b, 24)) & mask
    if _sys.byteorder == "little":
        return memoryview(c.to_bytes(size, "little")).cast("Q").tolist()
    return list(struct.unpack("<%dQ" % count, c.to_bytes(size, "little")))  # pragma: no cover


# -- many keys at once, with NumPy ---------------------------------------------------------------------
# NumPy is imported only here, when a batch is big enough to use it (a fresh Kernel() never imports it).
_numpy = None


def numpy_or_none():
    """The numpy module, imported on first use; None where it cannot be imported (the pure-Python paths
    are used then)."""
    global _numpy
    if _numpy is None:
        try:
            import numpy
        except ImportError:  # pragma: no cover - numpy is a dependency
            _numpy = False
        else:
            _numpy = numpy
    return _numpy or None


def jhash_array(data, key_len, count, initval=0):
    """jhash(key, key_len, initval) of each of the ``count`` keys of ``key_len`` bytes laid end to end in
    ``data``, as a NumPy uint32 array (the values of :func:`jhash`; lookup3 on uint32 arrays, which wrap
    modulo 2**32 as the kernel's u32 arithmetic does, one array operation per step for all keys).

    Needs NumPy (:func:`numpy_or_none`)."""
    np = numpy_or_none()
    u32 = np.uint32
    c0 = (JHASH_INITVAL + key_len + initval) & M
    if count == 0 or key_len == 0:
        return np.full(count, c0, dtype=u32)
    padded = (key_len + 11) // 12 * 12
    keys = np.frombuffer(data, dtype=np.uint8, count=key_len * count).reshape(count, key_len)
    if padded != key_len:  # the tail is read as zero-filled little-endian words
        full = np.zeros((count, padded), dtype=np.uint8)
        full[:, :key_len] = keys
        keys = full
    # word j of every key, one contiguous row per word
    words = np.ascontiguousarray(keys.view("<u4").T).astype(u32, copy=False)
    a = np.full(count, c0, dtype=u32)
    b = a.copy()
    c = a.copy()

    def rol(x, k):
        return (x << u32(k)) | (x >> u32(32 - k))

    last = padded // 4 - 3
    i = 0
    while i < last:
        a += words[i]
        b += words[i + 1]
        c += words[i + 2]
        # __jhash_mix
        a -= c; a ^= rol(c, 4); c += b
        b -= a; b ^= rol(a, 6); a += c
        c -= b; c ^= rol(b, 8); b += a
        a -= c; a ^= rol(c, 16); c += b
        b -= a; b ^= rol(a, 19); a += c
        c -= b; c ^= rol(b, 4); b += a
        i += 3
    a += words[last]
    b += words[last + 1]
    c += words[last + 2]
    # __jhash_final
    c ^= b; c -= rol(b, 14)
    a ^= c; a -= rol(c, 11)
    b ^= a; b -= rol(a, 25)
    c ^= b; c -= rol(b, 16)
    a ^= c; a -= rol(c, 4)
    b ^= a; b -= rol(a, 14)
    c ^= b; c -= rol(b, 24)
    return c
