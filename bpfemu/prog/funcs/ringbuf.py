"""Helpers of kernel/bpf/ringbuf.c: bpf_ringbuf_reserve, submit, discard, output and query.

A reserved record is a region of the run's memory over the ring buffer's own area (the map's
``reserve`` gives its offset), so what the program writes there is what a consumer reads through mmap once
the record is submitted. The region is unmapped again at submit or discard (the verifier makes the program
release every reservation).
"""
import errno

from ..helpers import helper_impl
from ..memory import M32
from .common import map_at, neg

BPF_RB_NO_WAKEUP, BPF_RB_FORCE_WAKEUP = 1, 2


@helper_impl("ringbuf_reserve")
def bpf_ringbuf_reserve(run, r1, r2, r3, r4, r5):
    """A pointer to a new record of r2 bytes, or NULL (no room, or flags)."""
    if r3:
        return 0
    m = map_at(run, r1)
    rec = m.reserve(r2)
    if rec is None:
        return 0
    view = memoryview(m.area)[rec:rec + r2]
    _, addr = run.mem.add_buffer("ringbuf", view, obj=(m, rec), name="ringbuf record")
    return addr


def _commit(run, addr, discard):
    r = run.mem.region_of(addr)
    m, rec = r.obj
    run.mem.remove(r)
    m.commit(rec, discard)


@helper_impl("ringbuf_submit")
def bpf_ringbuf_submit(run, r1, r2, r3, r4, r5):
    _commit(run, r1, False)
    return 0


@helper_impl("ringbuf_discard")
def bpf_ringbuf_discard(run, r1, r2, r3, r4, r5):
    _commit(run, r1, True)
    return 0


@helper_impl("ringbuf_output")
def bpf_ringbuf_output(run, r1, r2, r3, r4, r5):
    """Copy r3 bytes at r2 into a new record: -EINVAL for unknown flags, -EAGAIN when there is no room."""
    if r4 & ~(BPF_RB_NO_WAKEUP | BPF_RB_FORCE_WAKEUP):
        return neg(errno.EINVAL)
    m = map_at(run, r1)
    size = r3 & M32
    data = run.mem.read(r2, size)
    rec = m.reserve(size)
    if rec is None:
        return neg(errno.EAGAIN)
    m.area[rec:rec + size] = data
    m.commit(rec)
    return 0


@helper_impl("ringbuf_query")
def bpf_ringbuf_query(run, r1, r2, r3, r4, r5):
    return map_at(run, r1).query(r2)
