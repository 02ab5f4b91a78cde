"""A Map's fd as the user holds it, on both backends: a closed Map never reaches another object, an
unreferenced one is closed with a ResourceWarning, detach() hands the fd over."""
import errno
import gc

import pytest

from bpfemu import Map
from bpfemu import uapi as u
from bpfemu.testing.support import err, map_id, preloaded


def small(proc, name, **kw):
    return Map.create(proc, "hash", key="I", value="I", max_entries=4, name=name, flags=u.BPF_F_ZERO_SEED, **kw)


USES = {
    "set": lambda m, p: m.__setitem__(1, 999),
    "get": lambda m, p: m[1],
    "lookup": lambda m, p: m.lookup(1),
    "contains": lambda m, p: 1 in m,
    "delete": lambda m, p: m.delete(1),
    "update": lambda m, p: m.update(1, 2),
    "keys": lambda m, p: list(m.keys()),
    "items": lambda m, p: list(m.items()),
    "len": lambda m, p: len(m),
    "lookup_batch": lambda m, p: m.lookup_batch(count=4),
    "update_batch": lambda m, p: m.update_batch([1], [2]),
    "delete_batch": lambda m, p: m.delete_batch([1]),
    "freeze": lambda m, p: m.freeze(),
    "pin": lambda m, p: m.pin(p.bpffs + "/stale"),
    "info": lambda m, p: m.info(),
    "clear": lambda m, p: m.clear(),
    "fd": lambda m, p: m.fd,
}


@pytest.mark.parametrize("use", sorted(USES))
def test_a_closed_map_never_reaches_the_map_on_its_old_fd(proc, use):
    a = small(proc, "a")
    fd = a.fd
    a.close()
    b = small(proc, "b")
    assert b.fd == fd  # the lowest free fd: the kernel hands the number out again
    with pytest.raises(OSError) as ei:
        USES[use](a, proc)
    e = ei.value
    assert e.errno == errno.EBADF
    assert "hash map 'a' (id %d)" % a.id in str(e) and "closed" in str(e)
    # b saw nothing of it: no element, not frozen, not pinned
    assert dict(b.items()) == {} and b.update(1, 1) is None and b[1] == 1
    assert proc.listdir(proc.bpffs) == preloaded(proc)


def test_a_walk_stops_with_EBADF_when_its_map_is_closed(proc):
    m = small(proc, "walked")
    m.update_batch([1, 2, 3], [1, 2, 3])
    it = m.keys()
    next(it)
    m.close()
    with pytest.raises(OSError) as ei:
        list(it)
    assert ei.value.errno == errno.EBADF


def test_close_twice_and_the_context_manager(proc):
    with small(proc, "ctx") as m:
        fd = m.fd
    assert m.closed and err(proc.close, fd) == errno.EBADF
    m.close()
    assert "closed" in repr(m)


def test_detach_hands_the_fd_over(proc):
    m = small(proc, "detached")
    m[1] = 5
    fd = m.detach()
    assert m.closed and map_id(proc, fd) == m.id  # still open, now the caller's
    with pytest.raises(OSError) as ei:
        m.detach()
    assert ei.value.errno == errno.EBADF
    with Map.from_fd(proc, fd, key="I", value="I") as again:
        assert again[1] == 5
    assert fd not in proc.fds()


def test_an_unreferenced_map_is_closed_with_a_ResourceWarning(proc):
    m = small(proc, "dropped")
    fd = m.fd
    assert fd in proc.fds()
    with pytest.warns(ResourceWarning, match="unclosed map: hash map 'dropped'"):
        del m
        gc.collect()
    assert fd not in proc.fds()


def test_a_closed_or_detached_map_has_no_finalizer_work(proc, recwarn):
    m = small(proc, "closed")
    m.close()
    n = small(proc, "detached")
    fd = n.detach()
    del m, n
    gc.collect()
    assert not [w for w in recwarn if issubclass(w.category, ResourceWarning)]
    assert fd in proc.fds()
    proc.close(fd)
