"""The typed Map API gives exactly what the raw bpf(2) entry gives: the same values and the same errnos for
the same sequence of element commands. On an emulated task the API skips the attr and the checked copies
(``Task.map_elem``: its buffers are its own), on the host it makes the syscall; so each sequence runs twice
on the test's backend, once through a Map and once through ``proc.bpf`` on a twin map, and every step must
agree."""
import ctypes
import errno

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpfemu import Map
from bpfemu import uapi as u
from bpfemu.testing.fuzz import examples

TYPES = ["hash", "array", "percpu_hash", "percpu_array", "queue"]
FLAGS = [0, u.BPF_NOEXIST, u.BPF_EXIST, 3, u.BPF_F_LOCK, 8]


def _raw(proc, cmd, fd, key, value_size, value=None, flags=0):
    """One raw element command: ('ok', value bytes or None) or ('err', errno)."""
    kbuf = ctypes.create_string_buffer(key, len(key)) if key is not None else None
    vbuf = ctypes.create_string_buffer(value if value is not None else bytes(value_size), value_size)
    fields = dict(map_fd=fd, key=ctypes.addressof(kbuf) if kbuf is not None else 0)
    if cmd != u.BPF_MAP_DELETE_ELEM:
        fields.update(value=ctypes.addressof(vbuf), flags=flags)
    try:
        proc.bpf(cmd, u.make_attr(**fields))
    except OSError as e:
        return ("err", e.errno)
    return ("ok", vbuf.raw if cmd in (u.BPF_MAP_LOOKUP_ELEM, u.BPF_MAP_LOOKUP_AND_DELETE_ELEM) else None)


def _api(call):
    try:
        return ("ok", call())
    except OSError as e:
        return ("err", e.errno)


def _ops():
    key = st.integers(0, 5)
    val = st.integers(0, 2**64 - 1)
    flags = st.sampled_from(FLAGS)
    return st.lists(st.one_of(
        st.tuples(st.just("lookup"), key, st.just(0), flags),
        st.tuples(st.just("update"), key, val, flags),
        st.tuples(st.just("delete"), key, st.just(0), st.just(0)),
        st.tuples(st.just("lookup_and_delete"), key, st.just(0), flags),
    ), min_size=1, max_size=30)


@settings(max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(t=st.sampled_from(TYPES), ops=_ops())
def test_the_typed_api_and_the_raw_entry_agree_step_by_step(proc, t, ops):
    keyless = t == "queue"
    m = Map.create(proc, t, key=None if keyless else "I", value="Q", max_entries=4)
    twin = Map.create(proc, t, key=None if keyless else "I", value="Q", max_entries=4)
    try:
        uvs = m.user_value_size
        ncpus = m.ncpus
        for op, k, v, flags in ops:
            key = None if keyless else k
            kb = None if keyless else k.to_bytes(4, "little")
            if op == "lookup":
                got = _api(lambda: m.lookup(key, flags))
                want = _raw(proc, u.BPF_MAP_LOOKUP_ELEM, twin.fd, kb, uvs, flags=flags)
            elif op == "update":
                got = _api(lambda: m.update(key, v, flags))
                vb = b"".join(v.to_bytes(8, "little") for _ in range(ncpus))
                want = _raw(proc, u.BPF_MAP_UPDATE_ELEM, twin.fd, kb, uvs, vb, flags)
            elif op == "delete":
                got = _api(lambda: m.delete(key))
                want = _raw(proc, u.BPF_MAP_DELETE_ELEM, twin.fd, kb, uvs)
            else:
                got = _api(lambda: m.lookup_and_delete(key, flags))
                want = _raw(proc, u.BPF_MAP_LOOKUP_AND_DELETE_ELEM, twin.fd, kb, uvs, flags=flags)
            if got[0] == "ok" and want[0] == "ok" and want[1] is not None:
                vals = [int.from_bytes(want[1][i * 8:i * 8 + 8], "little") for i in range(ncpus)]
                want = ("ok", vals if m.percpu else vals[0])
            assert got == want, (t, op, k, v, flags)
    finally:
        m.close()
        twin.close()


@pytest.mark.parametrize("t", ["hash", "array"])
def test_frozen_and_read_only_fds_refuse_the_same_way(proc, t):
    m = Map.create(proc, t, key="I", value="Q", max_entries=4)
    ro = Map.from_id(proc, m.id, key="I", value="Q", open_flags=u.BPF_F_RDONLY)
    wo = Map.from_id(proc, m.id, key="I", value="Q", open_flags=u.BPF_F_WRONLY)
    try:
        kb, vb = (1).to_bytes(4, "little"), (7).to_bytes(8, "little")
        for handle in (ro, wo):
            for api_call, cmd, value in ((lambda: handle.update(1, 7), u.BPF_MAP_UPDATE_ELEM, vb),
                                         (lambda: handle.lookup(1), u.BPF_MAP_LOOKUP_ELEM, None),
                                         (lambda: handle.delete(1), u.BPF_MAP_DELETE_ELEM, None)):
                m[1] = 7  # the same state before each side
                got = _api(api_call)
                m[1] = 7
                want = _raw(proc, cmd, handle.fd, kb, 8, value)
                if want == ("ok", vb):
                    want = ("ok", 7)
                assert got == want, (handle, cmd)
        assert _api(lambda: ro.update(1, 7))[1] == errno.EPERM
        assert _api(lambda: wo.lookup(1))[1] == errno.EPERM
        m[1] = 7
        m.freeze()
        assert _api(lambda: m.update(1, 8)) == _raw(proc, u.BPF_MAP_UPDATE_ELEM, m.fd, kb, 8, vb) == (
            "err", errno.EPERM)
        assert m[1] == 7
    finally:
        for h in (ro, wo, m):
            h.close()

