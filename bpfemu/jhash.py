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
