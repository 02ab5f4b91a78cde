"""The raw entry under an asynchronous exception (KeyboardInterrupt, a signal handler's timeout exception):
raised right after the fast path takes the kernel lock, it must not leave the lock held (every other
thread's bpf() would wait for ever). Found by review after the fifth speed round took the lock with a bare
acquire() one statement before its try."""
import ctypes
import inspect
import sys
import threading


import bpfemu
from bpfemu import uapi as u
from bpfemu.syscall import sys_bpf as front
from bpfemu.testing.support import create_map, u32, u64, update


class _Interrupt(BaseException):
    """Stands for KeyboardInterrupt or an exception a signal handler raises (an alarm-based timeout)."""


def _lock_is_free(kernel):
    got = []
    th = threading.Thread(target=lambda: got.append(kernel.lock.acquire(timeout=1) and (kernel.lock.release() or 1)))
    th.start()
    th.join()
    return bool(got[0])


def _raise_at(code, lineno, call):
    """Run call() with an exception raised when code's frame reaches line lineno (as a signal handler's
    exception can be raised between two statements). Whether it was raised."""
    hit = []

    def local(frame, event, arg):
        if event == "line" and frame.f_lineno == lineno and not hit:
            hit.append(1)
            raise _Interrupt()
        return local

    old = sys.gettrace()
    sys.settrace(lambda frame, event, arg: local if frame.f_code is code else None)
    try:
        call()
    except _Interrupt:
        pass
    finally:
        sys.settrace(old)
    return bool(hit)


def test_an_exception_right_after_the_lock_is_taken_releases_it():
    k = bpfemu.Kernel()
    t = k.spawn(uid=0)
    fd = create_map(t, u.BPF_MAP_TYPE_HASH, 4, 8, max_entries=8)
    update(t, fd, u32(1), u64(1))
    code = front.sys_bpf_elem.__code__
    src, first = inspect.getsourcelines(front.sys_bpf_elem)
    after = next(first + i + 1 for i, line in enumerate(src) if "with kernel.lock:" in line)
    key, val = ctypes.create_string_buffer(u32(1), 4), ctypes.create_string_buffer(8)
    attr = u.make_attr(map_fd=fd, key=ctypes.addressof(key), value=ctypes.addressof(val))
    assert _raise_at(code, after, lambda: t.bpf(u.BPF_MAP_LOOKUP_ELEM, attr))
    free = _lock_is_free(k)
    while not free:  # let the other tests go on
        try:
            k.lock.release()
        except RuntimeError:
            break
    assert free
