"""Helpers that build attr bytes once for both backends and decode results.

Keys and values are bytes; each call keeps its buffers alive in ctypes objects
for the duration of the syscall. ``err(fn, ...)`` runs a call and returns its
errno (0 on success), the form most conformance assertions take.
"""
import ctypes
import struct
import time

from bpfemu import uapi as u
from bpfemu.uapi import make_attr  # noqa: F401


def buf(data_or_len):
    if isinstance(data_or_len, int):
        return ctypes.create_string_buffer(data_or_len)
    return ctypes.create_string_buffer(bytes(data_or_len), len(data_or_len))


def addr(b):
    return ctypes.addressof(b) if b is not None else 0


def err(fn, *args, **kw):
    """errno of fn(*args) (0 when it succeeds)."""
    try:
        fn(*args, **kw)
        return 0
    except OSError as e:
        return e.errno


def create_map(proc, map_type, key_size=4, value_size=8, max_entries=16, flags=0, name=b"", **extra):
    a = u.make_attr(map_type=map_type, key_size=key_size, value_size=value_size, max_entries=max_entries,
                    map_flags=flags, **extra)
    a.map_name = name
    return proc.bpf(u.BPF_MAP_CREATE, a)


def hash_map(proc, **kw):
    kw.setdefault("flags", u.BPF_F_ZERO_SEED)
    return create_map(proc, u.BPF_MAP_TYPE_HASH, **kw)


def array_map(proc, **kw):
    return create_map(proc, u.BPF_MAP_TYPE_ARRAY, **kw)


def update(proc, fd, key, value, flags=0):
    k, v = (buf(key) if key is not None else None), (buf(value) if value is not None else None)
    return proc.bpf(u.BPF_MAP_UPDATE_ELEM, u.make_attr(map_fd=fd, key=addr(k), value=addr(v), flags=flags))


def lookup(proc, fd, key, value_size, flags=0):
    k = buf(key) if key is not None else None
    v = buf(value_size)
    proc.bpf(u.BPF_MAP_LOOKUP_ELEM, u.make_attr(map_fd=fd, key=addr(k), value=addr(v), flags=flags))
    return v.raw


def delete(proc, fd, key):
    k = buf(key) if key is not None else None
    return proc.bpf(u.BPF_MAP_DELETE_ELEM, u.make_attr(map_fd=fd, key=addr(k)))


def lookup_and_delete(proc, fd, key, value_size, flags=0):
    k = buf(key) if key is not None else None
    v = buf(value_size)
    proc.bpf(u.BPF_MAP_LOOKUP_AND_DELETE_ELEM, u.make_attr(map_fd=fd, key=addr(k), value=addr(v), flags=flags))
    return v.raw


def next_key(proc, fd, key, key_size):
    k = buf(key) if key is not None else None
    n = buf(key_size)
    proc.bpf(u.BPF_MAP_GET_NEXT_KEY, u.make_attr(map_fd=fd, key=addr(k), next_key=addr(n)))
    return n.raw


def keys(proc, fd, key_size):
    """Every key by GET_NEXT_KEY from the start, in the kernel's order."""
    out, k = [], None
    while True:
        try:
            k = next_key(proc, fd, k, key_size)
        except OSError as e:
            assert e.errno == 2, e
            return out
        out.append(k)


def freeze(proc, fd):
    return proc.bpf(u.BPF_MAP_FREEZE, u.make_attr(map_fd=fd))


def map_info(proc, fd, info_len=None):
    info = u.bpf_map_info()
    n = ctypes.sizeof(info) if info_len is None else info_len
    a = u.make_attr(**{"info.bpf_fd": fd, "info.info_len": n, "info.info": ctypes.addressof(info)})
    proc.bpf(u.BPF_OBJ_GET_INFO_BY_FD, a)
    return info


def map_id(proc, fd):
    return map_info(proc, fd).id


def get_next_id(proc, start, cmd=u.BPF_MAP_GET_NEXT_ID):
    a = u.make_attr(start_id=start)
    proc.bpf(cmd, a)
    return a.next_id


def map_fd_by_id(proc, map_id, open_flags=0):
    return proc.bpf(u.BPF_MAP_GET_FD_BY_ID, u.make_attr(map_id=map_id, open_flags=open_flags))


def pin(proc, fd, path, file_flags=0, path_fd=0):
    p = buf(path.encode() + b"\0")
    return proc.bpf(u.BPF_OBJ_PIN, u.make_attr(pathname=addr(p), bpf_fd=fd, file_flags=file_flags, path_fd=path_fd))


def obj_get(proc, path, file_flags=0, path_fd=0):
    p = buf(path.encode() + b"\0")
    return proc.bpf(u.BPF_OBJ_GET, u.make_attr(pathname=addr(p), file_flags=file_flags, path_fd=path_fd))


def u32(n):
    return struct.pack("<I", n)


def u64(n):
    return struct.pack("<Q", n)


def id_alive(proc, map_id_):
    try:
        fd = map_fd_by_id(proc, map_id_)
    except OSError as e:
        assert e.errno == 2
        return False
    proc.close(fd)
    return True


def wait_gone(proc, map_id_, timeout=5.0):
    deadline = time.monotonic() + timeout
    while id_alive(proc, map_id_):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class BatchResult:
    """What a batch command left behind: errno (0 = success), the count written back,
    the out_batch bytes, and the keys/values buffers."""

    def __init__(self, errno_, count, out_batch, keys, values):
        self.errno, self.count, self.out_batch, self.keys, self.values = errno_, count, out_batch, keys, values

    def __repr__(self):
        return "<batch errno %d count %d out %s>" % (self.errno, self.count, self.out_batch.hex())


def batch(proc, cmd, fd, count, key_size, value_size, keys=None, values=None, in_batch=None,
          batch_size=4, elem_flags=0, flags=0, null=(), out_fill=b"\xee"):
    """Run one BPF_MAP_*_BATCH command. keys/values: input bytes (update/delete) or None for
    zeroed output buffers of count entries; in_batch: bytes or None (NULL). Fields named in
    ``null`` ('keys', 'values', 'out_batch') are passed as NULL. out_batch starts as out_fill."""
    kb = buf(keys if keys is not None else max(count * key_size, 1))
    vb = buf(values if values is not None else max(count * value_size, 1))
    ib = buf(in_batch) if in_batch is not None else None
    ob = buf(out_fill * batch_size)
    a = u.make_attr(**{"batch.map_fd": fd, "batch.count": count, "batch.elem_flags": elem_flags,
                       "batch.flags": flags, "batch.in_batch": addr(ib),
                       "batch.out_batch": 0 if "out_batch" in null else addr(ob),
                       "batch.keys": 0 if "keys" in null else addr(kb),
                       "batch.values": 0 if "values" in null else addr(vb)})
    e = err(proc.bpf, cmd, a)
    return BatchResult(e, a.batch.count, ob.raw, kb.raw, vb.raw)
