"""A differential BTF fuzzer: random blobs, BPF_BTF_LOAD on the emulator and on the host, compared.

Each case is drawn from ``random.Random(seed)``:

- a well-formed BTF written with :class:`bpfemu.btf.Builder` (1-14 types of
  every kind, references mostly backwards, sometimes forward, to void, to
  themselves or out of range; names valid, empty, invalid, long, Latin-1, or
  the names of special fields and kptr tags);
- then, most of the time, a corruption: the blob truncated, a bit flipped in
  the header or in a type record, a word of a type record set to an edge
  value, a header offset or length moved, the string section's NULs or first
  byte damaged, junk appended, vlen or kind changed;
- a log mode: none, level 1 or 2 with a large buffer, a small buffer (the ring
  log rotating, ENOSPC), BPF_LOG_FIXED.

The verdict must agree exactly: errno, the whole log buffer, log_true_size.
The test suite runs a bounded number of cases; a long run is
``python -m conformance.test_btf_fuzz SEED_FROM SEED_TO [CASES_PER_SEED]``
(counts and seeds of the runs made are in docs/robustness.md).
"""
import os
import random
import struct
import sys

import pytest

from bpfemu.testing.backends import need_host
from bpfemu.btf import Builder
from bpfemu.btf import uapi as U
from .corpus.btf import btf_load, btf_task

GOOD_NAMES = ["int", "a", "b", "x", "_y", "s.t", "A1", "n", "s", "bpf_spin_lock", "bpf_timer", "bpf_list_head",
              "bpf_list_node", "bpf_rb_root", "bpf_rb_node", "bpf_refcount", "bpf_wq", "bpf_res_spin_lock",
              "bpf_task_work", "task_struct", "kptr", "kptr_untrusted", "percpu_kptr", "uptr", "tag",
              b"\xe9t\xe9", "z" * 512]
BAD_NAMES = ["", "1bad", "a b", "a-b", "\u00e9", ".bss", ".data", "contains:s:n", "contains:bad", "z" * 513, "\x7f",
             b"\x80", b"a\xff"]
EDGE_WORDS = [0, 1, 2, 3, 4, 7, 8, 12, 16, 32, 64, 128, 129, 0xFF, 0xFFFF, 0x10000, U.BTF_MAX_TYPE,
              U.BTF_MAX_TYPE + 1, U.BTF_MAX_NAME_OFFSET, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFFE]


class _Rng(random.Random):
    """random.Random with how often the generator strays from well-formed BTF (``bad``, 0..1)."""

    bad = 0.3


def _name(rng):
    return rng.choice(BAD_NAMES if rng.random() < rng.bad / 2 else GOOD_NAMES)


def _pick(rng, good, bad):
    """A valid value, or (with probability rng.bad) any value."""
    return rng.choice(bad + good if rng.random() < rng.bad else good)


def _ref(rng, cur, total):
    r = rng.random()
    if (r < 1 - rng.bad or r < 0.70) and cur > 1:
        return rng.randint(1, cur - 1)
    if r < 0.80:
        return 0
    if r < 0.90:
        return rng.randint(1, max(1, total))
    if r < 0.95:
        return cur
    return rng.choice([total + 1, total + 5, U.BTF_MAX_TYPE, U.BTF_MAX_TYPE + 1, 0xFFFFFFFF])


def gen_builder(rng):
    """A random, mostly well-formed BTF."""
    b = Builder()
    total = rng.randint(1, 14)
    b.int("int", 4, signed=True)
    for cur in range(2, total + 1):
        k = rng.choice(["int", "int", "ptr", "array", "struct", "struct", "union", "enum", "enum64", "fwd",
                        "typedef", "const", "volatile", "restrict", "type_tag", "func_proto", "func", "var",
                        "datasec", "float", "decl_tag", "special"])
        ref = _ref(rng, cur, total)
        if k == "int":
            size = _pick(rng, [1, 2, 4, 8, 16, 4, 8], [3, 0, 32])
            bits = _pick(rng, [size * 8, size * 8, 1, 7, 31], [0, 129, size * 8 + 1])
            b.int(_name(rng), size, bits=bits, offset=_pick(rng, [0, 0, 0, 1], [8, 100]),
                  encoding=_pick(rng, [0, 0, 1, 2, 4], [3, 8]))
        elif k == "ptr":
            b.ptr(ref)
        elif k == "array":
            b.array(ref, _pick(rng, [0, 1, 2, 4, 100], [0x40000000, 0xFFFFFFFF]),
                    index=_pick(rng, [1], [ref, 0, cur]))
        elif k in ("struct", "union", "special"):
            n = rng.randint(0, 4)
            if k == "special":
                name = rng.choice(["bpf_spin_lock", "bpf_list_head", "bpf_list_node", "bpf_rb_root", "bpf_rb_node",
                                   "bpf_refcount", "bpf_timer", "bpf_res_spin_lock", "s", "task_struct"])
            else:
                name = _name(rng)
            auto = rng.random() < 0.6
            members = []
            bit = 0
            kflag = rng.random() < 0.2
            for _ in range(n):
                mt = _ref(rng, cur, total)
                if auto and mt < cur:
                    members.append((_name(rng), mt))
                else:
                    off = bit if rng.random() >= rng.bad else rng.choice([0, 1, 7, 8, 33, 64, 0xFFFFFF])
                    bf = _pick(rng, [0, 0, 0, 1, 3, 8], [33]) if kflag else 0
                    members.append((_name(rng), mt, off, bf))
                    bit = off + rng.choice([8, 32, 64])
            size = None if auto and rng.random() < 0.8 else _pick(rng, [bit // 8 + 8, 100], [0, 1, 4, 0xFFFFFFFF])
            try:
                b.size_align(1)
                (b.union if k == "union" else b.struct)(name, members, size=size, kflag=kflag)
                b.type_section()
            except (KeyError, RecursionError):
                del b.types[cur - 1:]
                b.struct(name, [], size=4)
        elif k == "enum":
            vals = [(_name(rng), rng.randint(-5, 5)) for _ in range(rng.randint(0, 3))]
            b.enum(_name(rng), vals, size=_pick(rng, [4, 4, 4, 1, 2, 8], [3, 16]), signed=rng.random() < 0.5)
        elif k == "enum64":
            vals = [(_name(rng), rng.choice([0, -1, 1 << 40])) for _ in range(rng.randint(0, 3))]
            b.enum64(_name(rng), vals, size=_pick(rng, [8, 8, 4], [0]), signed=rng.random() < 0.5)
        elif k == "fwd":
            b.fwd(_name(rng), union=rng.random() < 0.3)
        elif k in ("typedef", "const", "volatile", "restrict"):
            if k == "typedef":
                b.typedef(_name(rng), ref)
            else:
                getattr(b, k)(ref)
        elif k == "type_tag":
            b.type_tag(_name(rng), ref)
            if rng.random() < 0.1:
                b.types[-1].kflag = 1
        elif k == "func_proto":
            params = []
            for _ in range(rng.randint(0, 3)):
                params.append((_name(rng) if rng.random() < 0.7 else "", _ref(rng, cur, total)))
            if rng.random() < 0.2:
                params.append(...)
            b.func_proto(_ref(rng, cur, total), params)
        elif k == "func":
            b.func(_name(rng), ref, linkage=_pick(rng, [0, 1, 1], [2, 3]))
        elif k == "var":
            b.var(_name(rng), ref, linkage=_pick(rng, [0, 1, 1], [2]))
        elif k == "datasec":
            vs = []
            off = 0
            for _ in range(rng.randint(0, 3)):
                sz = _pick(rng, [1, 4, 8], [0])
                vs.append((_ref(rng, cur, total), off, sz))
                off += _pick(rng, [sz, sz + 4], [0])
            b.datasec(_pick(rng, [".data", ".bss", "a b", "x"], [""]), vs,
                      size=_pick(rng, [off, off + 4], [0, 1, None]) if vs else _pick(rng, [4], [0]))
        elif k == "float":
            b.float(_name(rng), _pick(rng, [2, 4, 8, 12, 16, 4, 8], [1, 3, 0]))
        elif k == "decl_tag":
            b.decl_tag(_name(rng), ref, component_idx=_pick(rng, [-1, -1, 0, 1], [2, -2]))
            if rng.random() < 0.1:
                b.types[-1].kflag = 1
    return b


def corrupt(rng, blob, ntypes_bytes):
    """Damage a blob in one of the ways the kernel checks for."""
    data = bytearray(blob)
    hdr = U.HDR_SIZE
    r = rng.randrange(12)
    if r == 0:  # truncation
        return bytes(data[:rng.randrange(len(data) + 1)])
    if r == 1:  # bit flip in the header
        i = rng.randrange(hdr)
        data[i] ^= 1 << rng.randrange(8)
    elif r == 2 and ntypes_bytes >= 4:  # bit flip in a type record
        i = hdr + rng.randrange(ntypes_bytes)
        data[i] ^= 1 << rng.randrange(8)
    elif r == 3 and ntypes_bytes >= 4:  # a type word set to an edge value
        w = rng.randrange(ntypes_bytes // 4)
        struct.pack_into("<I", data, hdr + 4 * w, rng.choice(EDGE_WORDS))
    elif r == 4:  # a header field moved
        field = rng.choice([4, 8, 12, 16, 20])
        v = struct.unpack_from("<I", data, field)[0]
        v = rng.choice([v + 1, v - 1, v + 4, v - 4, 0, 0xFFFFFFFF, v + 24, rng.randrange(256)]) & 0xFFFFFFFF
        struct.pack_into("<I", data, field, v)
    elif r == 5:  # the string section's bytes
        s0 = hdr + ntypes_bytes
        if s0 < len(data):
            i = rng.randrange(s0, len(data))
            data[i] = rng.choice([0, 0x20, 0x41, 0x7F, 0x80, 0xFF, 0x2E])
    elif r == 6:  # junk appended (sections no longer reach the end)
        data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    elif r == 7 and ntypes_bytes >= 12:  # vlen or kind of a record's info word
        w = rng.randrange(ntypes_bytes // 4)
        info = struct.unpack_from("<I", data, hdr + 4 * w)[0]
        if rng.random() < 0.5:
            info = (info & ~0xFFFF) | rng.choice([0, 1, 2, 3, 0xFFFF, 100])
        else:
            info = (info & ~(0x1F << 24)) | (rng.randrange(32) << 24)
        struct.pack_into("<I", data, hdr + 4 * w, info & 0xFFFFFFFF)
    elif r == 8:  # hdr_len grown, with zeros or not
        extra = rng.choice([4, 8, 1])
        fill = bytes(extra) if rng.random() < 0.6 else bytes([1] * extra)
        hl = struct.unpack_from("<I", data, 4)[0]
        data = data[:hdr] + fill + data[hdr:]
        struct.pack_into("<I", data, 4, hl + extra)
    elif r == 9:  # version/flags/magic
        field, v = rng.choice([(0, 0xEB9E), (2, 2), (3, 1), (2, 0)])
        if field == 0:
            struct.pack_into("<H", data, 0, v)
        else:
            data[field] = v
    # r in (10, 11): left well-formed
    return bytes(data)


LOG_MODES = [(1, 1 << 20)] * 8 + [(0, 0), (0, 0), (2, 65535), (9, 65535), (1, 32), (1, 200), (9, 100), (1, 1),
                                   (4, 65535), (16, 100), (0, 100), (3, 300)]


def case(seed, i):
    """(blob, log_level, log_size) of case i of a seed."""
    rng = _Rng("%d/%d" % (seed, i))
    rng.bad = rng.choice([0.0, 0.0, 0.1, 0.3, 0.3])
    b = gen_builder(rng)
    blob = b.blob()
    if rng.random() < 0.5:
        blob = corrupt(rng, blob, len(b.type_section()))
    level, size = rng.choice(LOG_MODES)
    return blob, level, size


def compare(seed, i, emu, host):
    blob, level, size = case(seed, i)
    got = btf_load(emu, blob, log_level=level, log_size=size)
    want = btf_load(host, blob, log_level=level, log_size=size)
    return got == want, blob, level, size, got, want


def run(seeds, per_seed, out=None):
    """Compare emulator and host on the cases of these seeds: (cases, mismatches, errno counts)."""
    emu, host = btf_task("emu"), btf_task("host")
    n = 0
    bad = []
    errnos = {}
    for seed in seeds:
        for i in range(per_seed):
            ok, blob, level, size, got, want = compare(seed, i, emu, host)
            n += 1
            errnos[want[0]] = errnos.get(want[0], 0) + 1
            if not ok:
                bad.append((seed, i))
                if out:
                    out.write("MISMATCH seed=%d case=%d level=%d size=%d emu=%r host=%r blob=%s\n" % (
                        seed, i, level, size, got[0], want[0], blob.hex()))
    return n, bad, errnos


@pytest.mark.parametrize("seed", range(1, 9))
def test_fuzz_emulator_matches_host(seed):
    need_host()
    n, bad, _ = run([seed], 40)
    assert not bad, "emulator and host differ on (seed, case) %r" % (bad,)


def test_fuzz_cases_are_diverse():
    """The generator reaches accepted blobs and many distinct causes (a fuzzer that only hits the header is useless)."""
    from bpfemu.btf import load
    verdicts = set()
    accepted = 0
    for i in range(300):
        blob, _l, _s = case(0, i)
        _b, err, log, _t = load(blob, 1, 1 << 20)
        accepted += err == 0
        verdicts.add((err, log.rstrip(b"\n").split(b"\n")[-1].split(b" ")[-1]))
    assert accepted >= 20
    assert len(verdicts) >= 40


if __name__ == "__main__":
    lo, hi = int(sys.argv[1]), int(sys.argv[2])
    per = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    n, bad, errnos = run(range(lo, hi + 1), per, out=sys.stdout)
    print("seeds %d..%d, %d cases each: %d cases, %d mismatches; host errnos %s" % (
        lo, hi, per, n, len(bad), dict(sorted(errnos.items()))))
