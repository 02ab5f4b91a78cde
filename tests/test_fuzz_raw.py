"""Hostile input at the raw entry: every call succeeds or raises OSError with an errno the
host could give, and the model's invariants hold after every call.

CI runs a bounded number of examples; BPFEMU_FUZZ_EXAMPLES=5000 (say) runs a long fuzz.
"""
import errno

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bpfemu
from bpfemu.testing.fuzz import (HOST_ERRNOS, Arena, Call, examples, fd_ops, id_calls, map_calls, map_creates,
                                  obj_calls, raw_calls, run, setup_calls)
from bpfemu import uapi as u

# bad pointers (guard pages, unmapped memory): skipped where bpfemu cannot detect them (not Linux,
# process_vm_readv blocked), with the reason
pytestmark = pytest.mark.bpf_bad_pointers

ALL_MAP_TYPES = tuple(range(0, 34))
SETTINGS = settings(max_examples=examples(60), deadline=None, derandomize=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

ops = st.lists(st.one_of(map_calls(), map_calls(), raw_calls(), obj_calls(), id_calls(),
                         map_creates(ALL_MAP_TYPES), fd_ops()), min_size=1, max_size=25)


def _step(kernel, task, arena, op):
    if isinstance(op, Call):
        status, val = run(task, arena, op)
    else:
        name, fd = op
        try:
            val = getattr(task, name)(fd)
            status = "ok"
        except OSError as e:
            status, val = "err", e.errno
    if status == "err":
        assert val in HOST_ERRNOS, "%r gave errno %d (%s)" % (op, val, errno.errorcode.get(val))
    bpfemu.check_invariants(kernel)
    return status, val


@SETTINGS
@given(seed=st.integers(0, 2**16), ops=ops)
def test_raw_entry_never_misbehaves(seed, ops):
    kernel = bpfemu.Kernel()
    task = kernel.spawn()
    arena = Arena(seed)
    try:
        for c in setup_calls():
            assert run(task, arena, c)[0] == "ok"
        task.open_dir("/sys/fs/bpf")
        for op in ops:
            _step(kernel, task, arena, op)
        task.exit()
        bpfemu.check_invariants(kernel)
    finally:
        arena.close()


@settings(max_examples=examples(30), deadline=None)
@given(seed=st.integers(0, 2**16), ops=st.lists(st.one_of(map_calls(), map_creates(ALL_MAP_TYPES)), max_size=20),
       limit=st.sampled_from([0, 4096, 20000, 1 << 20]))
def test_memory_limit_holds_under_fuzz(seed, ops, limit):
    """With a memory limit the accounting stays within it whatever the calls."""
    kernel = bpfemu.Kernel(memory_limit=limit)
    task = kernel.spawn()
    arena = Arena(seed)
    try:
        for c in setup_calls():
            run(task, arena, c)
        for op in ops:
            _step(kernel, task, arena, op)
        assert kernel.memcg.usage() <= limit
    finally:
        arena.close()


def test_unprivileged_task_fuzz_smoke():
    kernel = bpfemu.Kernel(unprivileged_bpf_disabled=0)
    task = kernel.spawn(uid=1000, caps=())
    arena = Arena(1)
    try:
        for c in setup_calls() + [Call(u.BPF_MAP_CREATE, {"map_type": t, "key_size": 4, "value_size": 8,
                                                          "max_entries": 4}) for t in ALL_MAP_TYPES]:
            _step(kernel, task, arena, c)
    finally:
        arena.close()
