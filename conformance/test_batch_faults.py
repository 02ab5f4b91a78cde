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
    mm = mmap.mmap(-1, 8 * PAGE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(mm))
    mm[:] = b"\xaa" * (8 * PAGE)
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
