"""Hash LOOKUP_BATCH / LOOKUP_AND_DELETE_BATCH whose keys or values run into a PROT_NONE or read-only page.

A differential test: each random case runs on a fresh emulated task and on the host kernel (in this
process, ``bpfemu.Host()``, because the buffers' page protections must be the caller's own; a child
process could not reproduce a read-only page), and everything observable must agree: the errno,
``count``, ``out_batch``, every byte of the buffers, and the keys left in the map.
"""
import ctypes
import mmap
import random

import pytest

import bpfemu
from bpfemu import uapi as u

from bpfemu.testing.support import keys
from bpfemu.testing.backends import need_host

# bad pointers (guard pages, unmapped memory): skipped where bpfemu cannot detect them (not Linux,
# process_vm_readv blocked), with the reason
pytestmark = pytest.mark.bpf_bad_pointers

PAGE = 4096
PROT_NONE, PROT_READ = 0, 1
# The buffers' mapping ends in GUARD PROT_NONE pages that stay so for the whole call: a batch that runs past
# the pages a case uses faults there on both backends, instead of writing into whatever this process has
# mapped next (the kernel and the emulator would both write it: Python's heap, once, which crashed the
# interpreter later, in the garbage collector or at exit).
GUARD = 4


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return libc


def run(sys_, cmd, nelem, count, koff, voff, badk, badv, prot, overlap):
    libc = _libc()
    a = u.make_attr(map_type=u.BPF_MAP_TYPE_HASH, key_size=4, value_size=8, max_entries=4096,
                    map_flags=u.BPF_F_ZERO_SEED)
    fd = sys_.bpf(u.BPF_MAP_CREATE, a)
    ks = (ctypes.c_uint32 * nelem)(*[i * 7919 % 100000 for i in range(nelem)])
    vs = (ctypes.c_uint64 * nelem)(*range(1000, 1000 + nelem))
    sys_.bpf(u.BPF_MAP_UPDATE_BATCH, u.make_attr(**{"batch.map_fd": fd, "batch.keys": ctypes.addressof(ks),
                                                    "batch.values": ctypes.addressof(vs), "batch.count": nelem}))
    mm = mmap.mmap(-1, (8 + GUARD) * PAGE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(mm))
    mm[:] = b"\xaa" * ((8 + GUARD) * PAGE)
    libc.mprotect(base + 8 * PAGE, GUARD * PAGE, PROT_NONE)
    if badk:
        libc.mprotect(base + 3 * PAGE, PAGE, prot)
    if badv:
        libc.mprotect(base + 7 * PAGE, PAGE, prot)
    out_batch = ctypes.c_uint32(0xFFFFFFFF)
    kaddr = base + 3 * PAGE - koff
    vaddr = kaddr + voff if overlap else base + 7 * PAGE - voff
    at = u.make_attr(**{"batch.map_fd": fd, "batch.keys": kaddr, "batch.values": vaddr, "batch.count": count,
                        "batch.out_batch": ctypes.addressof(out_batch)})
    try:
        sys_.bpf(cmd, at)
        r = 0
    except OSError as e:
        r = e.errno
    libc.mprotect(base + 3 * PAGE, PAGE, 3)
    libc.mprotect(base + 7 * PAGE, PAGE, 3)
    libc.mprotect(base + 8 * PAGE, GUARD * PAGE, 3)
    left = keys(sys_, fd, 4)
    sys_.close(fd)
    return r, at.batch.count, out_batch.value, bytes(mm), left


@pytest.mark.parametrize("seed", range(8))
def test_hash_batch_faults_match_the_host(seed):
    need_host(own_process="the calling process's own page protections")
    rnd = random.Random(seed)
    host = bpfemu.Host()
    for _ in range(6):
        args = (rnd.choice([u.BPF_MAP_LOOKUP_BATCH, u.BPF_MAP_LOOKUP_AND_DELETE_BATCH]), rnd.choice([5, 50, 900]),
                rnd.choice([1, 3, 10, 100, 1000]), rnd.randrange(0, 3 * PAGE), rnd.randrange(0, 3 * PAGE),
                rnd.random() < 0.5, rnd.random() < 0.5, rnd.choice([PROT_NONE, PROT_READ]), rnd.random() < 0.15)
        emu = bpfemu.Kernel().spawn()
        e, h = run(emu, *args), run(host, *args)
        assert e[:3] == h[:3], args
        assert e[3] == h[3], ("buffers differ", args)
        assert e[4] == h[4], ("keys left differ", args)


def dump_in_chunks(sys_, cmd, nelem, count, koff, voff, badk, badv, prot, step):
    """A dump of nelem elements in chunks of ``count``, out_batch passed back as in_batch, each chunk
    ``step`` bytes further into the key and value areas, which run into bad pages: every call's errno,
    count and out_batch, the buffers' bytes, the keys left."""
    libc = _libc()
    a = u.make_attr(map_type=u.BPF_MAP_TYPE_HASH, key_size=4, value_size=8, max_entries=4096,
                    map_flags=u.BPF_F_ZERO_SEED)
    fd = sys_.bpf(u.BPF_MAP_CREATE, a)
    ks = (ctypes.c_uint32 * nelem)(*[i * 7919 % 100000 for i in range(nelem)])
    vs = (ctypes.c_uint64 * nelem)(*range(1000, 1000 + nelem))
    sys_.bpf(u.BPF_MAP_UPDATE_BATCH, u.make_attr(**{"batch.map_fd": fd, "batch.keys": ctypes.addressof(ks),
                                                    "batch.values": ctypes.addressof(vs), "batch.count": nelem}))
    mm = mmap.mmap(-1, (40 + GUARD) * PAGE)  # (the chunks reach 37 pages at most)
    base = ctypes.addressof(ctypes.c_char.from_buffer(mm))
    mm[:] = b"\xaa" * ((40 + GUARD) * PAGE)
    libc.mprotect(base + 40 * PAGE, GUARD * PAGE, PROT_NONE)
    if badk:
        libc.mprotect(base + 11 * PAGE, PAGE, prot)
    if badv:
        libc.mprotect(base + 27 * PAGE, PAGE, prot)
    in_batch, out_batch = ctypes.c_uint32(0), ctypes.c_uint32(0xFFFFFFFF)
    calls = []
    for i in range(nelem // count + 2):
        at = u.make_attr(**{"batch.map_fd": fd, "batch.keys": base + 11 * PAGE - koff + i * step,
                            "batch.values": base + 27 * PAGE - voff + 2 * i * step, "batch.count": count,
                            "batch.in_batch": ctypes.addressof(in_batch) if i else 0,
                            "batch.out_batch": ctypes.addressof(out_batch)})
        try:
            sys_.bpf(cmd, at)
            r = 0
        except OSError as e:
            r = e.errno
        calls.append((r, at.batch.count, out_batch.value))
        if r == 0:
            in_batch.value = out_batch.value
        elif r != 14:  # a faulting chunk is retried from the same bucket, as a tool's loop would not; ENOENT ends
            break
    libc.mprotect(base + 11 * PAGE, PAGE, 3)
    libc.mprotect(base + 27 * PAGE, PAGE, 3)
    libc.mprotect(base + 40 * PAGE, GUARD * PAGE, 3)
    left = keys(sys_, fd, 4)
    sys_.close(fd)
    return calls, bytes(mm), left


@pytest.mark.parametrize("seed", range(6))
def test_hash_batch_dumps_in_chunks_match_the_host(seed):
    """Dumps in chunks (the walk order kept between calls, from 1024 elements on) against the host: with
    and without a bad page in reach, LOOKUP_BATCH and LOOKUP_AND_DELETE_BATCH."""
    need_host(own_process="the calling process's own page protections")
    rnd = random.Random(seed)
    host = bpfemu.Host()
    for _ in range(3):
        count = rnd.choice([97, 500, 1000])
        args = (rnd.choice([u.BPF_MAP_LOOKUP_BATCH, u.BPF_MAP_LOOKUP_AND_DELETE_BATCH]), rnd.choice([1100, 3000]),
                count, rnd.randrange(0, 8 * PAGE), rnd.randrange(0, 16 * PAGE),
                rnd.random() < 0.5, rnd.random() < 0.5, rnd.choice([PROT_NONE, PROT_READ]),
                rnd.choice([4 * count, 4 * count // 3]))
        emu = bpfemu.Kernel().spawn()
        e, h = dump_in_chunks(emu, *args), dump_in_chunks(host, *args)
        assert e[0] == h[0], args
        assert e[1] == h[1], ("buffers differ", args)
        assert e[2] == h[2], ("keys left differ", args)
