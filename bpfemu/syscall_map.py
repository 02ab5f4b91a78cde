"""The map commands of bpf(2) (the map half of the kernel's syscall.c).

Each handler checks what the kernel checks, in the kernel's order (the order
decides which errno wins), copies keys and values in and out through user
memory, and calls the map's operation.
"""
import errno
import string

from . import uapi
from .bpf_map import MAP_TYPES, NET_ADMIN_TYPES, UNPRIVILEGED_TYPES
from .errors import ENOTSUPP, bpf_error
from .objects import FMODE_READ, FMODE_WRITE, File
from .syscall import command

BPF_F_ACCESS = uapi.BPF_F_RDONLY | uapi.BPF_F_WRONLY
ELEM_LOCK = uapi.BPF_F_LOCK
NUMA_NO_NODE = -1
NR_NODE_IDS = 1  # the host has one NUMA node
QUEUE_STACK = (uapi.BPF_MAP_TYPE_QUEUE, uapi.BPF_MAP_TYPE_STACK)

# bpf_obj_name_cpy: isalnum() in the kernel's Latin-1 ctype table, '_' and '.'
_NAME_OK = frozenset(string.ascii_letters.encode() + string.digits.encode() + b"_.") | (
    frozenset(range(0xC0, 0x100)) - {0xD7, 0xF7})


def get_file_flag(flags):
    """bpf_get_file_flag: the fd's access mode from BPF_F_RDONLY/BPF_F_WRONLY."""
    if flags & uapi.BPF_F_RDONLY and flags & uapi.BPF_F_WRONLY:
        raise bpf_error(errno.EINVAL, "BPF_F_RDONLY and BPF_F_WRONLY together")
    if flags & uapi.BPF_F_RDONLY:
        return FMODE_READ
    if flags & uapi.BPF_F_WRONLY:
        return FMODE_WRITE
    return FMODE_READ | FMODE_WRITE


def obj_name_cpy(raw):
    """bpf_obj_name_cpy: validated name bytes up to the first NUL (EINVAL)."""
    raw = bytes(raw)
    end = raw.find(b"\0")
    if end < 0:
        raise bpf_error(errno.EINVAL, "object name not NUL-terminated within 16 bytes")
    name = raw[:end]
    if any(c not in _NAME_OK for c in name):
        raise bpf_error(errno.EINVAL, "object name has characters other than [A-Za-z0-9_.]")
    return name


def map_get(ctx, fd):
    """__bpf_map_get: EBADF for a closed fd, EINVAL for one that is not a map."""
    f = ctx.task.fdget(fd)
    if f.kind != "map" or f.obj is None:
        raise bpf_error(errno.EINVAL, "fd %d is not a map" % fd)
    return f, f.obj


def sys_perms(f, m):
    """map_get_sys_perms: the file's mode, less write on a frozen map."""
    mode = f.mode
    if m.frozen:
        mode &= ~FMODE_WRITE
    return mode


def need(f, m, mode):
    if sys_perms(f, m) & mode != mode:
        raise bpf_error(errno.EPERM, "fd lacks %s permission%s" % (
            "read" if mode == FMODE_READ else "write" if mode == FMODE_WRITE else "read/write",
            " (map is frozen)" if m.frozen and mode & FMODE_WRITE else ""))


def check_lock_flag(m, flags):
    if flags & ELEM_LOCK and not m.has_spin_lock():
        raise bpf_error(errno.EINVAL, "BPF_F_LOCK on a map without a bpf_spin_lock in its value")


def copy_key(ctx, m, ukey):
    """__bpf_copy_key: key_size bytes, or None for key-less maps (a pointer there is EINVAL)."""
    if m.key_size:
        return ctx.read(ukey, m.key_size)
    if ukey:
        raise bpf_error(errno.EINVAL, "this map type takes no key")
    return None


def map_new_fd(ctx, m, mode):
    f = File(m, mode)
    try:
        return ctx.task.fd_install(f, cloexec=True)
    except OSError:
        f.count = 1
        f.put()
        raise


# -- MAP_CREATE ---------------------------------------------------------------

@command(uapi.BPF_MAP_CREATE)
def map_create(ctx):
    a = ctx.attr
    ctx.check_attr(uapi.offsetofend("excl_prog_hash_size"))
    task = ctx.task
    token_flag = a.map_flags & uapi.BPF_F_TOKEN_FD
    a.map_flags &= ~uapi.BPF_F_TOKEN_FD
    if a.btf_vmlinux_value_type_id:
        if a.map_type != uapi.BPF_MAP_TYPE_STRUCT_OPS or a.btf_key_type_id or a.btf_value_type_id:
            raise bpf_error(errno.EINVAL, "btf_vmlinux_value_type_id is for struct_ops maps")
    elif a.btf_key_type_id and not a.btf_value_type_id:
        raise bpf_error(errno.EINVAL, "btf_key_type_id without btf_value_type_id")
    if a.map_type not in (uapi.BPF_MAP_TYPE_BLOOM_FILTER, uapi.BPF_MAP_TYPE_ARENA) and a.map_extra:
        raise bpf_error(errno.EINVAL, "map_extra is for bloom filter and arena maps")
    mode = get_file_flag(a.map_flags)
    if a.map_flags & uapi.BPF_F_NUMA_NODE:
        node = a.numa_node if a.numa_node < 1 << 31 else a.numa_node - (1 << 32)
        if node != NUMA_NO_NODE and not (0 <= node < NR_NODE_IDS):
            raise bpf_error(errno.EINVAL, "numa_node %d is not online" % node)
    cls = MAP_TYPES.get(a.map_type)
    if cls is None:
        raise bpf_error(errno.EINVAL, "unknown map type %d" % a.map_type)
    cls.alloc_check(a, task)
    if a.map_ifindex:
        raise bpf_error(errno.EINVAL, "device offload is not modeled")
    if token_flag:
        task.fdget(a.map_token_fd)
        raise bpf_error(errno.EINVAL, "BPF tokens are not modeled")
    if ctx.kernel.sysctl["kernel.unprivileged_bpf_disabled"] and not task.bpf_capable():
        raise bpf_error(errno.EPERM, "unprivileged BPF is disabled (kernel.unprivileged_bpf_disabled)")
    if a.map_type in NET_ADMIN_TYPES:
        if not task.net_capable():
            raise bpf_error(errno.EPERM, "%s maps need CAP_NET_ADMIN" % uapi.map_type_name(a.map_type))
    elif a.map_type not in UNPRIVILEGED_TYPES and not task.bpf_capable():
        raise bpf_error(errno.EPERM, "%s maps need CAP_BPF" % uapi.map_type_name(a.map_type))
    m = cls.map_alloc(ctx.kernel, a, task)
    m.map_flags &= ~BPF_F_ACCESS  # the type may add flags (devmap adds BPF_F_RDONLY_PROG)
    try:
        off, n = uapi.attr_field("map_name")
        m.name = obj_name_cpy(ctx.raw[off:off + n])
        if a.btf_key_type_id or a.btf_value_type_id or a.btf_vmlinux_value_type_id:
            f = task.fdget(a.btf_fd)
            if f.kind != "btf":
                raise bpf_error(errno.EINVAL, "btf_fd is not a BTF object")
            m.attach_btf(f.obj, a)
        if a.excl_prog_hash:
            if a.excl_prog_hash_size != 32:
                raise bpf_error(errno.EINVAL, "excl_prog_hash_size must be 32")
            m.excl_prog_hash = ctx.read(a.excl_prog_hash, 32)
        elif a.excl_prog_hash_size:
            raise bpf_error(errno.EINVAL, "excl_prog_hash_size without excl_prog_hash")
    except OSError:
        m.on_free()
        raise
    ctx.kernel.memcg.charge_map(m)  # ENOMEM past Kernel(memory_limit=...)
    ctx.kernel.register(m)
    m.hold(ctx.kernel)  # creation reference, dropped once the fd holds it
    try:
        return map_new_fd(ctx, m, mode)
    finally:
        m.release(ctx.kernel)


# -- element commands ---------------------------------------------------------

@command(uapi.BPF_MAP_LOOKUP_ELEM)
def map_lookup_elem(ctx):
    a = ctx.attr
    ctx.check_attr(uapi.offsetofend("flags"))
    if a.flags & ~ELEM_LOCK:
        raise bpf_error(errno.EINVAL, "unknown lookup flags")
    f, m = map_get(ctx, a.map_fd)
    need(f, m, FMODE_READ)
    check_lock_flag(m, a.flags)
    key = copy_key(ctx, m, a.key)
    if m.map_type == uapi.BPF_MAP_TYPE_BLOOM_FILTER:
        value = ctx.read(a.value, m.user_value_size)
        m.peek_value(value)
        return 0
    value = m.lookup_sys(key, a.flags)
    ctx.write(a.value, value)
    return 0


@command(uapi.BPF_MAP_UPDATE_ELEM)
def map_update_elem(ctx):
    a = ctx.attr
    ctx.check_attr(uapi.offsetofend("flags"))
    f, m = map_get(ctx, a.map_fd)
    need(f, m, FMODE_WRITE)
    check_lock_flag(m, a.flags)
    key = copy_key(ctx, m, a.key)
    value = ctx.read(a.value, m.user_value_size)
    m.update_sys(ctx.task, key, value, a.flags)
    return 0


@command(uapi.BPF_MAP_DELETE_ELEM)
def map_delete_elem(ctx):
    a = ctx.attr
    ctx.check_attr(uapi.offsetofend("key"))
    f, m = map_get(ctx, a.map_fd)
    need(f, m, FMODE_WRITE)
    key = copy_key(ctx, m, a.key)
    m.delete(key)
    return 0


@command(uapi.BPF_MAP_GET_NEXT_KEY)
def map_get_next_key(ctx):
    a = ctx.attr
    ctx.check_attr(uapi.offsetofend("next_key"))
    f, m = map_get(ctx, a.map_fd)
    need(f, m, FMODE_READ)
    key = copy_key(ctx, m, a.key) if a.key else None
    nxt = m.get_next_key(key)
    ctx.write(a.next_key, nxt)
    return 0


@command(uapi.BPF_MAP_LOOKUP_AND_DELETE_ELEM)
def map_lookup_and_delete_elem(ctx):
    a = ctx.attr
    ctx.check_attr(uapi.offsetofend("flags"))
    if a.flags & ~ELEM_LOCK:
        raise bpf_error(errno.EINVAL, "unknown flags")
    f, m = map_get(ctx, a.map_fd)
    need(f, m, FMODE_READ | FMODE_WRITE)
    if a.flags and m.map_type in QUEUE_STACK:
        raise bpf_error(errno.EINVAL, "queue/stack pop takes no flags")
    check_lock_flag(m, a.flags)
    key = copy_key(ctx, m, a.key)
    if m.map_type in QUEUE_STACK:
        value = m.pop()
    elif m.map_type in (uapi.BPF_MAP_TYPE_HASH, uapi.BPF_MAP_TYPE_PERCPU_HASH, uapi.BPF_MAP_TYPE_LRU_HASH,
                        uapi.BPF_MAP_TYPE_LRU_PERCPU_HASH, uapi.BPF_MAP_TYPE_STACK_TRACE):
        value = m.lookup_and_delete(key, a.flags)
    else:
        raise bpf_error(ENOTSUPP, "lookup-and-delete is not supported by %s maps" % m.type_name())
    ctx.write(a.value, value)
    return 0


@command(uapi.BPF_MAP_FREEZE)
def map_freeze(ctx):
    a = ctx.attr
    ctx.check_attr(uapi.offsetofend("map_fd"))
    f, m = map_get(ctx, a.map_fd)
    if m.map_type == uapi.BPF_MAP_TYPE_STRUCT_OPS or m.record:
        raise bpf_error(ENOTSUPP, "this map cannot be frozen")
    need(f, m, FMODE_WRITE)
    if m.writecnt:
        raise bpf_error(errno.EBUSY, "a writable mapping of the map is alive")
    if m.frozen:
        raise bpf_error(errno.EBUSY, "already frozen")
    m.frozen = True
    return 0


# -- batch commands -------------------------------------------------------------

def _batch(ctx, has_read, has_write, op):
    a = ctx.attr
    ctx.check_attr(uapi.offsetofend("batch.flags"))
    f, m = map_get(ctx, a.batch.map_fd)
    if has_read:
        need(f, m, FMODE_READ)
    if has_write:
        need(f, m, FMODE_WRITE)
    fn = getattr(m, op, None)
    if fn is None:
        raise bpf_error(ENOTSUPP, "%s maps have no %s" % (m.type_name(), op))
    return fn(ctx, a.batch)


@command(uapi.BPF_MAP_LOOKUP_BATCH)
def map_lookup_batch(ctx):
    return _batch(ctx, True, False, "lookup_batch")


@command(uapi.BPF_MAP_LOOKUP_AND_DELETE_BATCH)
def map_lookup_and_delete_batch(ctx):
    return _batch(ctx, True, True, "lookup_and_delete_batch")


@command(uapi.BPF_MAP_UPDATE_BATCH)
def map_update_batch(ctx):
    return _batch(ctx, False, True, "update_batch")


@command(uapi.BPF_MAP_DELETE_BATCH)
def map_delete_batch(ctx):
    return _batch(ctx, False, True, "delete_batch")
