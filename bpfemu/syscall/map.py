"""The map commands of bpf(2) (the map half of the kernel's syscall.c).

Each handler checks what the kernel checks, in the kernel's order (the order
decides which errno wins), copies keys and values in and out through user
memory, and calls the map's operation (:mod:`bpfemu.maps.bpf_map`).
"""
import errno

from .. import uapi
from ..caps import CAP_NET_ADMIN
from ..errors import ENOTSUPP, bpf_error
from ..limits import NR_NODE_IDS, NUMA_NO_NODE, SHA256_DIGEST_SIZE
from ..maps.bpf_types import MAP_TYPES, NET, UNPRIV
from ..objects import FMODE_READ, FMODE_WRITE, fdget
from .common import get_file_flag, new_fd, obj_name_cpy
from .table import COMMANDS, command

BPF_F_ACCESS = uapi.BPF_F_RDONLY | uapi.BPF_F_WRONLY
ELEM_LOCK = uapi.BPF_F_LOCK
BLOOM_FILTER = uapi.BPF_MAP_TYPE_BLOOM_FILTER


def map_get(ctx, field="map_fd", fd=None):
    """__bpf_map_get of the fd in attr field ``field`` (``fd``: its value, when decoded): (open file, map)."""
    f = ctx.fdget(field, fd)
    return f, f.obj


def map_fdget(task, entry, fd):
    """__bpf_map_get of the decoded ``map_fd`` of command ``entry``: (open file, map); the common case
    (an open map fd) without a call, the errors (EBADF, EINVAL) as the table declares them."""
    slot = task.fdtable.get(fd)
    if slot is not None:
        f = slot[0]
        m = f.obj
        if f.kind == "map" and m is not None:
            return f, m
    d = entry.fds["map_fd"]
    f = fdget(task, fd, d.kinds, d.wrong, d.closed)
    return f, f.obj


def sys_perms(f, m):
    """map_get_sys_perms: the file's mode, less write on a frozen map."""
    mode = f.mode
    if m.frozen:
        mode &= ~FMODE_WRITE
    return mode


def need(f, m, mode):
    """EPERM unless the fd's sys perms (:func:`sys_perms`) include ``mode``."""
    if f.mode & mode != mode or (m.frozen and mode & FMODE_WRITE):
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


def copy_key_value(ctx, m, ukey, uvalue):
    """__bpf_copy_key then the value's copy (map_update_elem): (key, value) read in one go when there is a
    key (EFAULT whichever is bad, as the kernel's two copies give; reads have no side effects)."""
    if m.key_size:
        return ctx.read2(ukey, m.key_size, uvalue, m.user_value_size)
    return copy_key(ctx, m, ukey), ctx.read(uvalue, m.user_value_size)


# -- MAP_CREATE ---------------------------------------------------------------

@command(uapi.BPF_MAP_CREATE)
def map_create(ctx):
    a = ctx.attr
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
    profile = ctx.kernel.profile
    entry = MAP_TYPES.get(a.map_type)
    if entry is None or not profile.knows_map_type(a.map_type):
        raise bpf_error(errno.EINVAL, "unknown map type %d%s" % (
            a.map_type, "" if entry is None else " in %s (%s)" % (profile.version, uapi.map_type_name(a.map_type))))
    entry.ops.alloc_check(a, task)
    if a.map_ifindex:
        raise bpf_error(errno.EINVAL, "device offload is not modeled")
    if token_flag:
        ctx.fdget("map_token_fd")
        raise bpf_error(errno.EINVAL, "BPF tokens are not modeled")  # pragma: no cover (no token objects)
    if (not profile.unpriv_check_at_entry and ctx.kernel.sysctl["kernel.unprivileged_bpf_disabled"]
            and not task.bpf_capable()):
        raise bpf_error(errno.EPERM, "unprivileged BPF is disabled (kernel.unprivileged_bpf_disabled)")
    if entry.privilege == NET:
        if not (task.net_capable() if profile.net_admin == "bpf_net_capable" else task.capable(CAP_NET_ADMIN)):
            raise bpf_error(errno.EPERM, "%s maps need %s" % (
                uapi.map_type_name(a.map_type), "CAP_NET_ADMIN or CAP_SYS_ADMIN" if profile.net_admin ==
                "bpf_net_capable" else "CAP_NET_ADMIN (CAP_SYS_ADMIN does not do in %s)" % profile.version))
    elif entry.privilege != UNPRIV and not task.bpf_capable():
        raise bpf_error(errno.EPERM, "%s maps need CAP_BPF" % uapi.map_type_name(a.map_type))
    m = entry.ops.map_alloc(ctx.kernel, a, task)
    m.map_flags &= ~BPF_F_ACCESS  # the type may add flags (devmap adds BPF_F_RDONLY_PROG)
    try:
        off, n = uapi.attr_field("map_name")
        m.name = obj_name_cpy(ctx.raw[off:off + n])
        if a.btf_key_type_id or a.btf_value_type_id or a.btf_vmlinux_value_type_id:
            btf = ctx.fdget("btf_fd").obj  # btf_get_by_fd: EBADF, or EINVAL for another kind of fd
            if btf.kernel_btf:
                raise bpf_error(errno.EACCES, "btf_fd names the kernel's own BTF")
            m.btf = btf  # map->btf: the map holds it from here on (dropped by bpf_map_free)
            btf.hold(m)
            if a.btf_value_type_id:
                m.check_btf(task, btf, a.btf_key_type_id, a.btf_value_type_id)
            m.btf_key_type_id = a.btf_key_type_id
            m.btf_value_type_id = a.btf_value_type_id
            m.btf_vmlinux_value_type_id = a.btf_vmlinux_value_type_id
        if a.excl_prog_hash:
            if a.excl_prog_hash_size != SHA256_DIGEST_SIZE:
                raise bpf_error(errno.EINVAL, "excl_prog_hash_size must be 32")
            m.excl_prog_hash = ctx.read(a.excl_prog_hash, SHA256_DIGEST_SIZE)
        elif a.excl_prog_hash_size:
            raise bpf_error(errno.EINVAL, "excl_prog_hash_size without excl_prog_hash")
        ctx.kernel.memcg.charge_map(m)  # ENOMEM past Kernel(memory_limit=...)
    except OSError:
        m.free()  # drops what the map took (its BTF)
        raise
    ctx.kernel.register(m)
    m.hold(ctx.kernel)  # creation reference, dropped once the fd holds it
    try:
        return new_fd(task, m, mode)
    finally:
        m.release(ctx.kernel)


# -- element commands ---------------------------------------------------------

# Each element command in two halves around its copies: the checks before the key is copied in
# (flags, fd, permissions: their order decides which errno wins) and the map operation after. The
# syscall handlers copy from and to the caller's memory between them; :func:`map_elem_owned` runs
# the same halves on bytes the caller owns (the typed Map API on an emulated task).

def lookup_check(task, entry, map_fd, flags):
    """map_lookup_elem up to the key copy: (file, map)."""
    if flags & ~ELEM_LOCK:
        raise bpf_error(errno.EINVAL, "unknown lookup flags")
    f, m = map_fdget(task, entry, map_fd)
    if not f.mode & FMODE_READ:
        need(f, m, FMODE_READ)
    if flags & ELEM_LOCK:
        check_lock_flag(m, flags)
    return f, m


def write_check(task, entry, map_fd, flags=0):
    """map_update_elem/map_delete_elem up to the key copy: (file, map)."""
    f, m = map_fdget(task, entry, map_fd)
    if not f.mode & FMODE_WRITE or m.frozen:
        need(f, m, FMODE_WRITE)
    if flags & ELEM_LOCK:
        check_lock_flag(m, flags)
    return f, m


def lookup_and_delete_check(task, entry, map_fd, flags):
    """map_lookup_and_delete_elem up to the key copy: (file, map)."""
    if flags & ~ELEM_LOCK:
        raise bpf_error(errno.EINVAL, "unknown flags")
    f, m = map_fdget(task, entry, map_fd)
    need(f, m, FMODE_READ | FMODE_WRITE)
    if flags & ELEM_LOCK:
        check_lock_flag(m, flags)
    return f, m


def check_lookup_and_delete_type(kernel, m):
    """map_lookup_and_delete_elem after the key copy: the map types this kernel version serves (ENOTSUPP)."""
    if m.map_type not in kernel.profile.lookup_and_delete_types:
        raise bpf_error(ENOTSUPP, "%s does not serve lookup-and-delete of %s maps" % (
            kernel.profile.version, m.type_name()))


@command(uapi.BPF_MAP_LOOKUP_ELEM)
def map_lookup_elem(ctx):
    map_fd, ukey, uvalue, flags = ctx.args
    f, m = lookup_check(ctx.task, ctx.entry, map_fd, flags)
    ks = m.key_size
    key = ctx.read(ukey, ks) if ks else copy_key(ctx, m, ukey)
    if m.map_type == BLOOM_FILTER:  # the value is what is looked for
        m.peek_value(ctx.read(uvalue, m.user_value_size))
        return 0
    value = m.lookup_sys(key, flags)
    ctx.write(uvalue, value)
    return 0


@command(uapi.BPF_MAP_UPDATE_ELEM)
def map_update_elem(ctx):
    map_fd, ukey, uvalue, flags = ctx.args
    f, m = write_check(ctx.task, ctx.entry, map_fd, flags)
    key, value = copy_key_value(ctx, m, ukey, uvalue)
    m.update_sys(ctx.task, key, value, flags)
    return 0


@command(uapi.BPF_MAP_DELETE_ELEM)
def map_delete_elem(ctx):
    map_fd, ukey = ctx.args
    f, m = write_check(ctx.task, ctx.entry, map_fd)
    ks = m.key_size
    m.delete(ctx.read(ukey, ks) if ks else copy_key(ctx, m, ukey))
    return 0


@command(uapi.BPF_MAP_GET_NEXT_KEY)
def map_get_next_key(ctx):
    map_fd, ukey, unext = ctx.args
    f, m = map_fdget(ctx.task, ctx.entry, map_fd)
    need(f, m, FMODE_READ)
    key = copy_key(ctx, m, ukey) if ukey else None
    nxt = m.get_next_key(key)
    ctx.write(unext, nxt)
    return 0


@command(uapi.BPF_MAP_LOOKUP_AND_DELETE_ELEM)
def map_lookup_and_delete_elem(ctx):
    map_fd, ukey, uvalue, flags = ctx.args
    f, m = lookup_and_delete_check(ctx.task, ctx.entry, map_fd, flags)
    key = copy_key(ctx, m, ukey)
    check_lookup_and_delete_type(ctx.kernel, m)
    value = m.lookup_and_delete_sys(key, flags)
    ctx.write(uvalue, value)
    return 0


# -- the element commands on bytes the caller owns ------------------------------------

_LOOKUP, _UPDATE, _DELETE, _LOOKUP_AND_DELETE = (uapi.BPF_MAP_LOOKUP_ELEM, uapi.BPF_MAP_UPDATE_ELEM,
                                                 uapi.BPF_MAP_DELETE_ELEM, uapi.BPF_MAP_LOOKUP_AND_DELETE_ELEM)


def _owned_key(m, key):
    """What copy_key gives for a key the caller owns: key_size bytes, or None for key-less maps."""
    if m.key_size:
        if key is None or len(key) != m.key_size:
            raise ValueError("a key of %d bytes is needed" % m.key_size)
        return key
    if key is not None:
        raise bpf_error(errno.EINVAL, "this map type takes no key")
    return None


def map_elem_owned(task, cmd, map_fd, key, value=None, flags=0):
    """BPF_MAP_LOOKUP_ELEM, _UPDATE_ELEM, _DELETE_ELEM and _LOOKUP_AND_DELETE_ELEM on ``key`` and
    ``value`` as bytes the caller owns instead of pointers into its memory: the same checks in the same
    order and the same map operations as the syscall, without the attr and the user-memory copies (which
    cannot fault on such bytes). ``key`` is ``key_size`` bytes or None for a key-less map, ``value`` the
    user value size (update; what a bloom filter lookup looks for). Returns the value bytes (lookups) or
    None; raises OSError(errno) as bpf(2) does."""
    if not task.alive:
        raise bpf_error(errno.ESRCH, "task has exited")
    kernel = task.kernel
    with kernel.lock:
        outer, kernel.current = kernel.current, task
        try:
            if cmd == _LOOKUP:
                f, m = lookup_check(task, _ENTRY[cmd], map_fd, flags)
                key = _owned_key(m, key)
                if m.map_type == BLOOM_FILTER:
                    m.peek_value(bytes(value))
                    return None
                return m.lookup_sys(key, flags)
            if cmd == _UPDATE:
                f, m = write_check(task, _ENTRY[cmd], map_fd, flags)
                m.update_sys(task, _owned_key(m, key), bytes(value), flags)
                return None
            if cmd == _DELETE:
                f, m = write_check(task, _ENTRY[cmd], map_fd)
                m.delete(_owned_key(m, key))
                return None
            if cmd == _LOOKUP_AND_DELETE:
                f, m = lookup_and_delete_check(task, _ENTRY[cmd], map_fd, flags)
                key = _owned_key(m, key)
                check_lookup_and_delete_type(kernel, m)
                return m.lookup_and_delete_sys(key, flags)
            raise ValueError("not an element command: %r" % (cmd,))
        finally:
            kernel.current = outer


@command(uapi.BPF_MAP_FREEZE)
def map_freeze(ctx):
    f, m = map_get(ctx)
    if m.map_type == uapi.BPF_MAP_TYPE_STRUCT_OPS or m.fields_block_freeze():
        raise bpf_error(ENOTSUPP, "this map cannot be frozen")
    for check in ctx.kernel.profile.freeze_checks:  # this version's checks, in its order
        FREEZE_CHECKS[check](ctx, f, m)
    m.frozen = True
    return 0


def _freeze_write_perm(ctx, f, m):
    need(f, m, FMODE_WRITE)


def _freeze_write_active(ctx, f, m):
    if m.writecnt:
        raise bpf_error(errno.EBUSY, "a writable mapping of the map is alive")


def _freeze_frozen(ctx, f, m):
    if m.frozen:
        raise bpf_error(errno.EBUSY, "already frozen")


def _freeze_bpf_capable(ctx, f, m):
    if not ctx.task.bpf_capable():
        raise bpf_error(errno.EPERM, "MAP_FREEZE needs CAP_BPF in %s" % ctx.kernel.profile.version)


FREEZE_CHECKS = {"write_perm": _freeze_write_perm, "write_active": _freeze_write_active, "frozen": _freeze_frozen,
                 "bpf_capable": _freeze_bpf_capable}


# -- batch commands (bpf_map_do_batch) --------------------------------------------

def _batch(ctx, has_read, has_write):
    f, m = map_get(ctx, "batch.map_fd")
    if has_read:
        need(f, m, FMODE_READ)
    if has_write:
        need(f, m, FMODE_WRITE)
    return m


@command(uapi.BPF_MAP_LOOKUP_BATCH)
def map_lookup_batch(ctx):
    return _batch(ctx, True, False).lookup_batch(ctx, ctx.attr.batch)


@command(uapi.BPF_MAP_LOOKUP_AND_DELETE_BATCH)
def map_lookup_and_delete_batch(ctx):
    return _batch(ctx, True, True).lookup_and_delete_batch(ctx, ctx.attr.batch)


@command(uapi.BPF_MAP_UPDATE_BATCH)
def map_update_batch(ctx):
    return _batch(ctx, False, True).update_batch(ctx, ctx.attr.batch)


@command(uapi.BPF_MAP_DELETE_BATCH)
def map_delete_batch(ctx):
    return _batch(ctx, False, True).delete_batch(ctx, ctx.attr.batch)


_ENTRY = COMMANDS
