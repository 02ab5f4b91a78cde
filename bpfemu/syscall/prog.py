"""The program commands of bpf(2) (the program half of the kernel's syscall.c): BPF_PROG_LOAD.

:func:`prog_load` hands the copied-in attr to :func:`bpfemu.prog.load.bpf_prog_load` (the checks of
``bpf_prog_load()`` in the kernel's order, then the verifier) through :class:`LoadCtx`, the caller's view
the program side needs: capabilities, user memory, the fd resolver, the kernel's BTF. A verified program
becomes a kernel object (:class:`bpfemu.prog.prog.BpfProg`: an id, the references on its maps) and the
caller gets a read-write fd to it.
"""
import ctypes
import errno
import struct

from ..errors import bpf_error
from ..objects import FMODE_READ, FMODE_WRITE, fdget
from ..prog.core import NotEmulated
from ..prog.load import LoadContext, bpf_prog_load
from ..prog.prog import pack_insns
from ..prog.test_run import bpf_prog_test_run, check_test_run_attr
from .common import check_uarg_tail_zero, new_fd, obj_name_cpy
from .info import info_of
from .table import command
from .. import uapi

_CAPS = {"bpf": "bpf_capable", "perfmon": "perfmon_capable", "net_admin": "net_capable"}


class LoadCtx(LoadContext):
    """bpf_prog_load's view of the syscall in flight (see :class:`bpfemu.prog.load.LoadContext`)."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.task = ctx.task
        self.unprivileged_bpf_disabled = ctx.kernel.sysctl["kernel.unprivileged_bpf_disabled"]
        self.jit_enabled = ctx.kernel.sysctl["net.core.bpf_jit_enable"]

    def capable(self, name):
        t = self.task
        if name == "sys_admin":
            from ..caps import CAP_SYS_ADMIN
            return t.capable(CAP_SYS_ADMIN)
        return getattr(t, _CAPS[name])()

    def read(self, addr, n):
        return self.ctx.read(addr, n)

    def write(self, addr, data):
        self.ctx.write(addr, data)

    def read_str(self, addr, maxlen):
        """strncpy_from_user: bytes up to the NUL (at most ``maxlen``), EFAULT only for what it must read."""
        out = b""
        while len(out) < maxlen:
            step = min(maxlen - len(out), 4096 - (addr + len(out)) % 4096)
            chunk = self.ctx.read(addr + len(out), step)
            nul = chunk.find(b"\0")
            if nul >= 0:
                return out + chunk[:nul]
            out += chunk
        return out

    def map_of_fd(self, fd):
        if not 0 <= fd <= 0x7fffffff:
            return errno.EBADF
        try:
            return fdget(self.task, fd, "map").obj
        except OSError as e:
            return e.errno

    def obj_name_cpy(self, raw):
        return obj_name_cpy(raw)

    def token_of_fd(self, fd):
        fdget(self.task, fd, "token")
        raise bpf_error(errno.EINVAL, "BPF tokens are not modeled")  # pragma: no cover (no token objects)

    def btf_of_fd(self, fd):
        """The parsed types (``bpfemu.btf.Btf``) of the BTF object behind ``fd`` (EBADF, EINVAL as fdget);
        the object is kept as the program's BTF (``prog_btf``)."""
        obj = fdget(self.task, fd, "btf").obj
        self.prog_btf = obj
        return obj.btf

    prog_btf = None

    @property
    def kernel_btf(self):
        """The kernel's BTF, loaded on first use by the verifier (a callable the verifier calls): this
        kernel's own (btf id 1), the one its maps' kptr fields and attach ids refer to."""
        vmlinux = self.ctx.kernel.btf_vmlinux
        return lambda: vmlinux.btf


@command(uapi.BPF_PROG_LOAD)
def prog_load(ctx):
    lctx = LoadCtx(ctx)
    prog, res = bpf_prog_load(ctx.attr, lctx, uattr_size=ctx.size, uattr=ctx.uattr)
    prog.created_by_uid = ctx.task.uid
    clock = getattr(ctx.kernel, "clock", None)
    if clock is not None:   # aux->load_time: ktime_get_boottime_ns() at load
        prog.load_time = clock.ktime_get_boot_ns()
    _keep_btf_info(ctx, prog, lctx, res)
    prog.publish(ctx.kernel)
    prog.hold(ctx.kernel)  # the creation reference, dropped once the fd holds it
    try:
        return new_fd(ctx.task, prog, FMODE_READ | FMODE_WRITE)
    finally:
        prog.release(ctx.kernel)


def _keep_btf_info(ctx, prog, lctx, res):
    """What bpf_check leaves in prog->aux of the program's BTF: the BTF object (held by the program), its
    func_info and its line_info, as OBJ_GET_INFO_BY_FD gives them back."""
    env = getattr(res, "env", None)
    if lctx.prog_btf is None or env is None or getattr(env, "prog_btf", None) is None:
        return
    p = ctx.attr.prog_load
    prog.btf_obj = lctx.prog_btf
    prog.func_info = list(env.func_info or [])
    if p.line_info_cnt:
        rec = p.line_info_rec_size
        raw = ctx.read(p.line_info, rec * p.line_info_cnt)
        prog.line_info = [struct.unpack_from("<IIII", raw, i * rec) for i in range(p.line_info_cnt)]


# -- OBJ_GET_INFO_BY_FD of a program ------------------------------------------------------------------

PROG_INFO_SIZE = ctypes.sizeof(uapi.bpf_prog_info)
PROG_INFO_MIN = uapi.offsetofend("attach_btf_id", uapi.bpf_prog_info)


@info_of("prog")
def prog_get_info(ctx, prog):
    """bpf_prog_get_info_by_fd. The emulator has no JIT: jited_prog_len and the jited arrays stay 0; the
    xlated instructions are the loaded ones with each map fd replaced by the map's id (the kernel's are
    after its rewrites, which the emulator does not make)."""
    a = ctx.attr
    uinfo = a.info.info
    info_len = a.info.info_len
    check_uarg_tail_zero(ctx.mem.read, uinfo, PROG_INFO_MIN, info_len)
    info_len = min(info_len, PROG_INFO_SIZE)
    buf = bytearray(PROG_INFO_SIZE)
    buf[:info_len] = ctx.read(uinfo, info_len)
    info = uapi.bpf_prog_info.from_buffer(buf)
    info.type = prog.type
    info.id = prog.id
    info.load_time = prog.load_time
    info.created_by_uid = prog.created_by_uid
    info.gpl_compatible = 1 if prog.gpl_compatible else 0
    off = uapi.bpf_prog_info.tag.offset
    buf[off:off + 8] = prog.tag
    off = uapi.bpf_prog_info.name.offset
    buf[off:off + uapi.BPF_OBJ_NAME_LEN] = prog.name.ljust(uapi.BPF_OBJ_NAME_LEN, b"\0")
    ulen = min(info.nr_map_ids, len(prog.maps))
    info.nr_map_ids = len(prog.maps)
    for i in range(ulen):
        ctx.write(info.map_ids + 4 * i, prog.maps[i].id.to_bytes(4, "little"))
    for n, c, size in (("nr_func_info", "func_info_rec_size", 8), ("nr_line_info", "line_info_rec_size", 16),
                       ("nr_jited_line_info", "jited_line_info_rec_size", 8)):
        if (getattr(info, n) or getattr(info, c)) and getattr(info, c) != size:
            raise bpf_error(errno.EINVAL, "%s must be %d" % (c, size))
    info.func_info_rec_size, info.line_info_rec_size, info.jited_line_info_rec_size = 8, 16, 8
    info.run_time_ns, info.run_cnt, info.recursion_misses = prog.run_time_ns, prog.run_cnt, 0
    info.verified_insns = prog.verified_insns
    if prog.btf_obj is not None:
        info.btf_id = prog.btf_obj.id
    if ctx.task.bpf_capable():
        ulen = info.xlated_prog_len
        info.xlated_prog_len = 8 * len(prog.insns)
        if ulen:
            dump = pack_insns(_dump_insns(prog))
            ctx.write(info.xlated_prog_insns, dump[:min(ulen, len(dump))])
        info.jited_prog_len = 0
        info.nr_jited_ksyms = info.nr_jited_func_lens = 0
        info.nr_prog_tags = 0
        info.attach_btf_id = prog.attach_btf_id
        if prog.attach_btf_id and getattr(ctx.kernel, "btf_vmlinux", None) is not None:
            info.attach_btf_obj_id = ctx.kernel.btf_vmlinux.id   # the kernel's BTF holds the target
        for n, ptr, recs, fmt in (("nr_func_info", "func_info", prog.func_info, "<II"),
                                  ("nr_line_info", "line_info", prog.line_info, "<IIII")):
            ulen = getattr(info, n)
            setattr(info, n, len(recs))
            if recs and ulen:
                data = b"".join(struct.pack(fmt, *r) for r in recs[:min(ulen, len(recs))])
                ctx.write(getattr(info, ptr), data)
        info.nr_jited_line_info = 0
    else:
        info.jited_prog_len = info.xlated_prog_len = 0
        info.nr_jited_ksyms = info.nr_jited_func_lens = 0
        info.nr_func_info = info.nr_line_info = info.nr_jited_line_info = 0
    ctx.write(uinfo, bytes(buf[:info_len]))
    ctx.put("info.info_len", info_len)
    return 0


def _dump_insns(prog):
    """bpf_insn_prepare_dump: ld_imm64 of a map fd/value names the map by id."""
    out = list(prog.insns)
    for i, m in getattr(prog, "insn_maps", {}).items():
        c, d, s, o, _imm = out[i]
        out[i] = (c, d, s, o, m.id)
    return out


# -- BPF_PROG_TEST_RUN (BPF_PROG_RUN) -----------------------------------------------------------------

@command(uapi.BPF_PROG_TEST_RUN)
def prog_test_run(ctx):
    """bpf_prog_test_run (syscall.c): the ctx pointer/size pairs, then the prog fd (EBADF, EINVAL for
    another kind of fd), then the type's test_run (ENOTSUPP for a type without one). No capability is
    needed. Something the emulator does not model (a helper without an implementation) fails the run with
    EINVAL, saying what."""
    check_test_run_attr(ctx.attr)
    prog = ctx.fdget("test.prog_fd").obj
    try:
        return bpf_prog_test_run(prog, ctx)
    except NotEmulated as e:
        raise bpf_error(errno.EINVAL, "%s (in program %r)" % (e, prog.name.decode("latin-1"))) from None


# -- BPF_ENABLE_STATS -----------------------------------------------------------------------------------------

BPF_STATS_RUN_TIME = 0


class BpfStats:
    """The file BPF_ENABLE_STATS hands out (anon inode "bpf-stats"): while one is open, program runs are
    counted (run_cnt, run_time_ns in fdinfo and prog info); closing the last fd of it turns that off again."""

    kind = "stats"

    def __init__(self, kernel):
        self.kernel = kernel
        self.refs = 0

    def hold(self, holder):
        if not self.refs:
            self.kernel.stats_enabled += 1  # static_key_slow_inc
        self.refs += 1

    def release(self, holder):
        self.refs -= 1
        if not self.refs:
            self.kernel.stats_enabled -= 1  # bpf_stats_release

    def show_fdinfo(self):
        return []


@command(uapi.BPF_ENABLE_STATS)
def enable_stats(ctx):
    """bpf_enable_stats: CAP_SYS_ADMIN (EPERM), then the type (only BPF_STATS_RUN_TIME, else EINVAL)."""
    from ..caps import CAP_SYS_ADMIN
    if not ctx.task.capable(CAP_SYS_ADMIN):
        raise bpf_error(errno.EPERM, "BPF_ENABLE_STATS needs CAP_SYS_ADMIN")
    if ctx.attr.enable_stats.type != BPF_STATS_RUN_TIME:
        raise bpf_error(errno.EINVAL, "unknown stats type %d" % ctx.attr.enable_stats.type)
    return new_fd(ctx.task, BpfStats(ctx.kernel), FMODE_READ)


# -- BPF_PROG_BIND_MAP ----------------------------------------------------------------------------------------

@command(uapi.BPF_PROG_BIND_MAP)
def prog_bind_map(ctx):
    """bpf_prog_bind_map: flags must be 0 (EINVAL), then the program and the map fds; the map joins the
    program's used maps (held while the program lives, listed in its info's map_ids) unless it is there."""
    if ctx.attr.prog_bind_map.flags:
        raise bpf_error(errno.EINVAL, "prog_bind_map.flags must be 0")
    prog = ctx.fdget("prog_bind_map.prog_fd").obj
    m = ctx.fdget("prog_bind_map.map_fd").obj
    if any(u is m for u in prog.maps):
        return 0
    m.hold(prog)
    prog.maps.append(m)
    return 0


# -- BPF_PROG_STREAM_READ_BY_FD -------------------------------------------------------------------------------

@command(uapi.BPF_PROG_STREAM_READ_BY_FD)
def prog_stream_read(ctx):
    """bpf_prog_stream_read: the program, then the stream (BPF_STDOUT 1 or BPF_STDERR 2, else ENOENT), then
    a length above INT_MAX (EINVAL); copies out and consumes up to stream_buf_len bytes of the stream, and
    returns how many (EFAULT only when none could be copied)."""
    a = ctx.attr.prog_stream_read
    prog = ctx.fdget("prog_stream_read.prog_fd").obj
    stream = prog.streams.get(a.stream_id)
    if stream is None:
        raise bpf_error(errno.ENOENT, "no stream %d" % a.stream_id)
    if a.stream_buf_len > 0x7FFFFFFF:
        raise bpf_error(errno.EINVAL, "stream_buf_len above INT_MAX")
    n = min(len(stream), a.stream_buf_len)
    if n:
        ctx.write(a.stream_buf, bytes(stream[:n]))
        del stream[:n]
    return n
