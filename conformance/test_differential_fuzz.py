"""Differential fuzz: the same random call sequences on the emulator and the host kernel,
compared call by call (result or errno, the attr bytes written back, every byte of user
memory afterwards).

Normalized, and only this: object ids (the host has other maps, so the ``id`` of
bpf_map_info is masked) and nothing else -- hash maps are created with
BPF_F_ZERO_SEED (bucket order is then deterministic), and the host task is pinned to
CPU 0, where the emulated task runs (LRU victims depend on the CPU). Needs the host
(skipped, or failed with BPFEMU_REQUIRE_HOST=1, when it is unusable).
BPFEMU_FUZZ_EXAMPLES scales it up.
"""
import ctypes

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from bpfemu import uapi as u
from bpfemu.testing.backends import EmuBackend, HostBackend, need_host, real_backend, real_profile
from bpfemu.testing.fuzz import Arena, Call, Ptr, examples, fd_ops, map_calls, map_creates, obj_calls, run, setup_calls

# bad pointers (guard pages, unmapped memory): skipped where bpfemu cannot detect them (not Linux,
# process_vm_readv blocked), with the reason
pytestmark = pytest.mark.bpf_bad_pointers

INFO_ID = (u.bpf_map_info.id.offset, 4)

CALL = st.one_of(map_calls(huge=False), map_calls(huge=False), map_calls(huge=False), map_creates(), obj_calls(),
                 fd_ops(huge=False))
calls = st.lists(CALL, min_size=1, max_size=20)
long_calls = st.lists(CALL, min_size=20, max_size=100)  # long runs: deeper states, fewer process spawns


@pytest.fixture(scope="module")
def host_backend():
    need_host()
    b = real_backend()
    yield b
    b.close()


def _do(task, arena, op):
    if isinstance(op, Call):
        return run(task, arena, op)
    try:
        return ("ok", getattr(task, op[0])(op[1]))
    except OSError as e:
        return ("err", e.errno)


def _mask_pointers(op, pages):
    """The attr (at the end of the last page) holds addresses, which differ by arena."""
    if not isinstance(op, Call) or op.where is not None:
        pages[-1] = b""  # the last call's attr, with its addresses
        return
    last = len(pages) - 1
    size = ctypes.sizeof(u.bpf_attr) if op.size is None else op.size
    start = 4096 - min(max(size, 0), 4096)
    page = bytearray(pages[last])
    for name, v in op.fields.items():
        if isinstance(v, Ptr):
            off, n = u.attr_field(name)
            page[start + off:start + off + n] = bytes(len(page[start + off:start + off + n]))
    pages[last] = bytes(page)


def _normalize(op, pages, masks):
    """Mask what may differ; ``masks`` collects the (page, start, end) ranges an info call filled
    with an id, which stay masked for the rest of the sequence (the bytes stay in memory)."""
    _mask_pointers(op, pages)
    if isinstance(op, Call) and op.cmd == u.BPF_OBJ_GET_INFO_BY_FD:
        p = op.fields.get("info.info")
        if p is not None and p.kind == "buf":
            i, off = p.page % len(pages), p.off
            masks.add((i, off + INFO_ID[0], off + INFO_ID[0] + INFO_ID[1]))
    for i, start, end in masks:
        page = bytearray(pages[i])
        end = min(end, len(page))
        page[start:end] = bytes(max(end - start, 0))
        pages[i] = bytes(page)
    return pages


def replay(emu, host, seed, ops):
    """Run ops on both; return the first disagreement as a string, or None."""
    ea, ha = Arena(seed, emu.bpffs), Arena(seed, host.bpffs)
    try:
        log, masks = [], set()
        for op in setup_calls() + [("open_dir", None)] + list(ops):
            if op == ("open_dir", None):
                emu.open_dir(emu.bpffs), host.open_dir(host.bpffs)
                continue
            r1, r2 = _do(emu, ea, op), _do(host, ha, op)
            log.append((op, r1))
            p1, p2 = _normalize(op, ea.pages(), masks), _normalize(op, ha.pages(), masks)
            if r1 != r2:
                return "%r: emu %r, host %r\nafter %r" % (op, r1, r2, log[:-1])
            for i, (a, b) in enumerate(zip(p1, p2)):
                if i == 0:  # page 0 holds the backend's own paths
                    continue
                if a != b:
                    d = next(j for j in range(len(a)) if a[j] != b[j])
                    return "%r: memory differs at page %d +%d: emu %s host %s\nafter %r" % (
                        op, i, d, a[d:d + 16].hex(), b[d:d + 16].hex(), log[:-1])
        return None
    finally:
        ea.close()
        ha.close()


@settings(max_examples=examples(25), deadline=None, suppress_health_check=list(HealthCheck),
          phases=[Phase.explicit, Phase.generate])  # each host call is an RPC: no slow shrinking
@given(seed=st.integers(0, 2**16), ops=calls)
def test_emulator_matches_host(host_backend, seed, ops):
    problem = run_once(host_backend, seed, ops)
    assert problem is None, problem


def run_once(host_backend, seed, ops):
    """One sequence on a fresh emulated kernel of the real kernel's version and a fresh task of the real
    kernel pinned to CPU 0 (where the emulated task runs: LRU victims depend on the CPU; a VM's tasks all
    run on its CPU 0); the first disagreement, or None."""
    emu = EmuBackend(version=host_backend.profile.version).spawn()
    host = host_backend.spawn()
    if hasattr(host, "sched_setaffinity"):
        host.sched_setaffinity({0})
    try:
        return replay(emu, host, seed, ops)
    finally:
        host.exit()
        _clean_pins(host_backend)


def _clean_pins(host_backend):
    """Unpin what the example left in the backend's private bpffs (seen by its tasks, not by this process)."""
    t = host_backend.spawn()
    try:
        for name in t.listdir(host_backend.bpffs):
            try:
                t.unlink(host_backend.bpffs + "/" + name)
            except OSError:
                pass  # maps.debug and progs.debug stay
    finally:
        t.exit()


# -- long runs -----------------------------------------------------------------------------------------

def long_run(seed, n_examples, out=None):
    """Run ``n_examples`` sequences of ``calls`` drawn with hypothesis seed ``seed`` on both machines,
    going on past disagreements. Returns (sequences, steps, [disagreement texts]); a step is one call
    of a sequence (the setup calls every sequence starts with are not counted)."""
    from hypothesis import seed as hseed

    host_backend = HostBackend()
    stats = {"sequences": 0, "steps": 0}
    problems = []

    @hseed(seed)
    @settings(max_examples=n_examples, deadline=None, suppress_health_check=list(HealthCheck), database=None,
              phases=[Phase.generate])
    @given(arena_seed=st.integers(0, 2**16), ops=long_calls)
    def one(arena_seed, ops):
        problem = run_once(host_backend, arena_seed, ops)
        stats["sequences"] += 1
        stats["steps"] += len(ops)
        if problem is not None:
            problems.append("seed %d arena %d: %s" % (seed, arena_seed, problem))
            if out is not None:
                print("DISAGREEMENT", problems[-1], file=out, flush=True)

    try:
        one()
    finally:
        host_backend.close()
    return stats["sequences"], stats["steps"], problems


if __name__ == "__main__":
    import sys
    first, last = int(sys.argv[1]), int(sys.argv[2])
    per = int(sys.argv[3]) if len(sys.argv) > 3 else 500
    total_seq = total_steps = 0
    all_problems = []
    for s in range(first, last + 1):
        n, steps, problems = long_run(s, per, out=sys.stdout)
        total_seq, total_steps = total_seq + n, total_steps + steps
        all_problems += problems
        print("seed %d: %d sequences, %d steps, %d disagreements (total %d steps, %d disagreements)"
              % (s, n, steps, len(problems), total_steps, len(all_problems)), flush=True)
