"""bpfemu.Program: load a program from instructions on any bpf(2) backend, read its info, pin it.

Built on the raw ``sys.bpf(cmd, attr)`` entry only, like :class:`bpfemu.Map`, so it drives an emulated task,
``bpfemu.Host()`` and a ``HostTask`` alike::

    from bpfemu.prog.insn import BPF_MOV64_IMM, BPF_EXIT_INSN
    p = Program.load(sys, [BPF_MOV64_IMM(0, 0), BPF_EXIT_INSN()], "socket_filter", name="ret0")
    p.info().tag            # 8 bytes: SHA-256 of the instructions
    Program.load(sys, [BPF_EXIT_INSN()], "socket_filter")
    # -> PermissionError (EACCES), a BpfError whose .log is the verifier's: '... R0 !read_ok ...'

Instructions are the builders' tuples ``(code, dst, src, off, imm)`` (``bpfemu.prog.insn``) or raw bytes (8
per instruction). A refused load raises :class:`BpfError` with the verifier log in ``.log`` (the load is
retried with a log when none was asked for, as libbpf does) and its last line in the message. With
``log_level`` set, the log of a successful load is kept in :attr:`Program.log`.

A Program is a :class:`~bpfemu.api.handle.Handle`, as a Map is: any number of threads may use one; ``close()``
waits for the calls in flight; a closed Program raises EBADF on every use (``.fd`` included), never reaching the
object that reused its fd number; a Program dropped unclosed closes its fd with a ResourceWarning
(:meth:`~bpfemu.api.handle.Handle.detach` hands the fd over instead). docs/api.md is the reference.
"""
import ctypes
import struct
from collections import namedtuple

from .. import uapi
from .errors import make_error, reraise
from .handle import Handle

__all__ = ["Program", "ProgInfo", "TestRun", "prog_type_number"]

U = uapi
LOG_SIZE = 1 << 20
BPF_F_TEST_RUN_ON_CPU = 1 << 0
DATA_OUT_SLACK = 4096   # room past the input for programs that grow the packet (bpf_xdp_adjust_tail, ...)

# the types whose test run writes the context back to ctx_out (bpf_ctx_finish); a syscall program's run writes
# it back into ctx_in; the others refuse a ctx_out (EINVAL)
CTX_OUT_TYPES = frozenset((U.BPF_PROG_TYPE_SOCKET_FILTER, U.BPF_PROG_TYPE_SCHED_CLS, U.BPF_PROG_TYPE_SCHED_ACT,
                           U.BPF_PROG_TYPE_CGROUP_SKB, U.BPF_PROG_TYPE_LWT_IN, U.BPF_PROG_TYPE_LWT_OUT,
                           U.BPF_PROG_TYPE_LWT_XMIT, U.BPF_PROG_TYPE_LWT_SEG6LOCAL, U.BPF_PROG_TYPE_XDP,
                           U.BPF_PROG_TYPE_FLOW_DISSECTOR, U.BPF_PROG_TYPE_SK_LOOKUP))

TestRun = namedtuple("TestRun", "retval data_out ctx_out duration")
TestRun.__doc__ = """What BPF_PROG_TEST_RUN gave back: ``retval`` (the program's return value, u32), ``data_out``
(the packet after the run, bytes, or None when no data went in), ``ctx_out`` (the context after the run, or
None when none went in) and ``duration`` (mean ns per run)."""


def prog_type_number(t):
    """A program type by number, enum name ('BPF_PROG_TYPE_XDP') or short name ('xdp'); ValueError for a name
    that is no program type."""
    if isinstance(t, int):
        return t
    name = str(t).upper()
    if not name.startswith("BPF_PROG_TYPE_"):
        name = "BPF_PROG_TYPE_" + name
    value = getattr(U, name, None)
    if not isinstance(value, int):
        raise ValueError("unknown program type %r" % (t,))
    return value


def prog_type_name(t):
    """'socket_filter' for BPF_PROG_TYPE_SOCKET_FILTER; 'prog type N' for a number uapi does not name."""
    for k, v in vars(U).items():
        if k.startswith("BPF_PROG_TYPE_") and v == t and isinstance(v, int):
            return k[len("BPF_PROG_TYPE_"):].lower()
    return "prog type %d" % t


def kernel_name(name):
    """The name as the kernel keeps it (bpf_obj_name_cpy): at most BPF_OBJ_NAME_LEN - 1 (15) bytes, up to a
    NUL. The kernel refuses a name with other characters than letters, digits, '_' and '.' (EINVAL)."""
    nm = name.encode("latin-1") if isinstance(name, str) else bytes(name or b"")
    return nm[:U.BPF_OBJ_NAME_LEN - 1].split(b"\0", 1)[0].decode("latin-1")


def _encode(insns):
    if isinstance(insns, (bytes, bytearray, memoryview)):
        return bytes(insns)
    return b"".join(struct.pack("<BBhi", c, (d & 0xf) | ((s & 0xf) << 4), o, i) for c, d, s, o, i in insns)


class ProgInfo:
    """What OBJ_GET_INFO_BY_FD says about a program (``type``, ``id``, ``tag``, ``name``, ``map_ids``,
    ``verified_insns``, ``xlated_prog_len``, ``gpl_compatible``, ``load_time``, ``created_by_uid``, ``run_cnt``,
    ``run_time_ns``)."""

    def __init__(self, info, map_ids):
        self.type = info.type
        self.id = info.id
        self.tag = bytes(info.tag)
        self.name = bytes(info.name).split(b"\0", 1)[0].decode("latin-1")
        self.map_ids = list(map_ids)
        self.verified_insns = info.verified_insns
        self.xlated_prog_len = info.xlated_prog_len
        self.gpl_compatible = bool(info.gpl_compatible)
        self.load_time = info.load_time
        self.created_by_uid = info.created_by_uid
        self.run_cnt = info.run_cnt            # runs counted while a BPF_ENABLE_STATS fd was open
        self.run_time_ns = info.run_time_ns

    def __repr__(self):
        return "ProgInfo(type=%d, id=%d, tag=%s, name=%r)" % (self.type, self.id, self.tag.hex(), self.name)


class Program(Handle):
    """A program fd on one backend task ``sys`` (anything with ``bpf()`` and ``close()``), owned: close it with
    :meth:`close` or a ``with`` block.

    Attributes: ``sys``, ``fd`` (an EBADF :class:`BpfError` once closed), ``name`` (as the kernel keeps it:
    at most 15 bytes), ``log`` (the verifier log of a load with ``log_level`` set, else None), ``closed``."""

    kind = "prog"

    def __init__(self, sys, fd, name="", log=None, prog_type=None):
        self.name = kernel_name(name)
        self.log = log
        self._prog_type = prog_type
        Handle.__init__(self, sys, fd, self._describe(fd))

    def _describe(self, fd):
        t = prog_type_name(self._prog_type) + " program" if self._prog_type is not None else "program"
        return "%s %s" % (t, repr(self.name) if self.name else "fd %d" % fd)

    @classmethod
    def load(cls, sys, insns, prog_type, license="GPL", name="", expected_attach_type=0, prog_flags=0,
             log_level=0, log_size=LOG_SIZE, **fields):
        """BPF_PROG_LOAD of ``insns`` (builder tuples or raw bytes, 8 per instruction) as ``prog_type`` (a
        number, 'xdp' or 'BPF_PROG_TYPE_XDP'; ValueError for an unknown name). ``name`` goes to prog_name
        cut to 15 bytes, as libbpf does. ``log_level`` (1, 2, 4: BPF_LOG_LEVEL1/2, BPF_LOG_STATS) asks for
        the verifier log, kept in :attr:`log` (``log_size`` bytes of buffer). Other ``bpf_attr`` fields of
        PROG_LOAD pass through (``prog_btf_fd=``, ``attach_btf_id=``, ``kern_version=``...). Returns a
        Program; raises BpfError with the verifier log in ``.log`` when the kernel refuses it (without
        ``log_level`` the load is retried with a level-1 log to say why, as libbpf does)."""
        ptype = prog_type_number(prog_type)
        raw = _encode(insns)
        ib = ctypes.create_string_buffer(raw, max(len(raw), 1))
        lic = ctypes.create_string_buffer(license.encode() if isinstance(license, str) else license)
        nm = name.encode("latin-1") if isinstance(name, str) else bytes(name or b"")
        nm = nm[:U.BPF_OBJ_NAME_LEN - 1]
        level = log_level
        while True:
            log = ctypes.create_string_buffer(log_size) if level else None
            a = U.make_attr(prog_type=ptype, insn_cnt=len(raw) // 8, expected_attach_type=expected_attach_type,
                            prog_flags=prog_flags, log_level=level, log_size=log_size if level else 0, **fields)
            a.prog_load.insns = ctypes.addressof(ib)
            a.prog_load.license = ctypes.addressof(lic)
            a.prog_load.log_buf = ctypes.addressof(log) if log is not None else 0
            ctypes.memmove(ctypes.addressof(a) + type(a.prog_load).prog_name.offset, nm, len(nm))
            try:
                fd = sys.bpf(U.BPF_PROG_LOAD, a)
            except OSError as exc:
                if not level and not log_level:
                    level = 1   # as libbpf: load again with a log to say why
                    continue
                text = log.value.decode("latin-1") if log is not None else ""
                lines = [ln for ln in text.splitlines() if ln and not ln.startswith("processed ")]
                e = make_error(exc.errno, "BPF_PROG_LOAD", "program %r" % (nm.decode("latin-1") or "?"),
                               lines[-1] if lines else getattr(exc, "bpf_detail", None))
                e.log = text
                raise e from None
            text = log.value.decode("latin-1") if log is not None and log_level else None
            return cls._adopt(sys, fd, nm, text, ptype)

    @classmethod
    def _adopt(cls, sys, fd, name, log=None, prog_type=None):
        try:
            return cls(sys, fd, name, log, prog_type)
        except BaseException:
            sys.close(fd)
            raise

    @classmethod
    def from_fd(cls, sys, fd):
        """Wrap an open program fd of ``sys``, which the Program then owns (close() closes it, and so does
        the finalizer; :meth:`detach` gives it back). Its name and type come from OBJ_GET_INFO_BY_FD."""
        info = cls._info_of(sys, fd, "prog fd %d" % fd)
        return cls(sys, fd, info.name, prog_type=info.type)

    @classmethod
    def from_id(cls, sys, prog_id):
        """BPF_PROG_GET_FD_BY_ID: a new fd on the program with this id."""
        try:
            fd = sys.bpf(U.BPF_PROG_GET_FD_BY_ID, U.make_attr(prog_id=prog_id))
        except OSError as e:
            raise reraise(e, U.BPF_PROG_GET_FD_BY_ID, "prog id %d" % prog_id) from None
        return cls._adopt_info(sys, fd)

    @classmethod
    def from_pin(cls, sys, path):
        """BPF_OBJ_GET: a new fd on the program pinned at ``path``."""
        p = ctypes.create_string_buffer(path.encode() if isinstance(path, str) else path)
        try:
            fd = sys.bpf(U.BPF_OBJ_GET, U.make_attr(pathname=ctypes.addressof(p)))
        except OSError as e:
            raise reraise(e, U.BPF_OBJ_GET, "pin %r" % (path,)) from None
        return cls._adopt_info(sys, fd)

    @classmethod
    def _adopt_info(cls, sys, fd):
        try:
            info = cls._info_of(sys, fd, "prog fd %d" % fd)
        except BaseException:
            sys.close(fd)
            raise
        return cls._adopt(sys, fd, info.name, prog_type=info.type)

    @staticmethod
    def _info_of(sys, fd, target):
        info = U.bpf_prog_info()
        ids = (ctypes.c_uint32 * 64)()
        info.nr_map_ids = 64
        info.map_ids = ctypes.addressof(ids)
        a = U.make_attr(**{"info.bpf_fd": fd, "info.info_len": ctypes.sizeof(info),
                           "info.info": ctypes.addressof(info)})
        try:
            sys.bpf(U.BPF_OBJ_GET_INFO_BY_FD, a)
        except OSError as e:
            raise reraise(e, U.BPF_OBJ_GET_INFO_BY_FD, target) from None
        return ProgInfo(info, ids[:min(info.nr_map_ids, 64)])

    def pin(self, path):
        """BPF_OBJ_PIN at ``path`` (a bpffs path)."""
        p = ctypes.create_string_buffer(path.encode() if isinstance(path, str) else path)
        self._enter(U.BPF_OBJ_PIN)
        try:
            self.sys.bpf(U.BPF_OBJ_PIN, U.make_attr(bpf_fd=self._fd, pathname=ctypes.addressof(p)))
        except OSError as e:
            raise reraise(e, U.BPF_OBJ_PIN, self._target) from None
        finally:
            self._leave()

    def info(self):
        """OBJ_GET_INFO_BY_FD as a :class:`ProgInfo` (with up to 64 map ids)."""
        self._enter(U.BPF_OBJ_GET_INFO_BY_FD)
        try:
            info = self._info_of(self.sys, self._fd, self._target)
        finally:
            self._leave()
        if self._prog_type is None:
            self._prog_type = info.type
        return info

    @property
    def id(self):
        """The program's id (from OBJ_GET_INFO_BY_FD)."""
        return self.info().id

    def test_run(self, data=None, ctx=None, repeat=0, cpu=None, flags=0, data_size_out=None, ctx_size_out=None):
        """BPF_PROG_TEST_RUN (net/bpf/test_run.c): run the program once (or ``repeat`` times; 0 is once) on
        ``data`` (the packet: bytes) and ``ctx`` (the context struct as bytes: ``__sk_buff``, ``xdp_md``,
        the raw tracepoint's u64 args...). ``cpu``: run there (BPF_F_TEST_RUN_ON_CPU; raw tracepoints).
        Returns a :class:`TestRun`. The data output buffer defaults to the input's size plus 4 KiB (a program
        that grows the packet past it fails with ENOSPC, as the kernel says); the context comes back for the
        types whose run writes it back (skb types, XDP, flow dissector, sk_lookup; a syscall program's into
        its ctx_in), in a buffer of the input's size. Errors are BpfError with the kernel's errno (ENOTSUPP
        524 for a type without test runs, EINVAL for an attribute the type does not take)."""
        data = bytes(data) if data is not None else None
        ctx = bytes(ctx) if ctx else None   # an empty context is none (the kernel refuses a pointer of size 0)
        if ctx_size_out is None and ctx is not None:
            ptype = self._type()
            ctx_size_out = len(ctx) if ptype in CTX_OUT_TYPES else 0
        din = ctypes.create_string_buffer(data, max(len(data), 1)) if data is not None else None
        if data_size_out is None:
            data_size_out = len(data) + DATA_OUT_SLACK if data is not None else 0
        dout = ctypes.create_string_buffer(max(data_size_out, 1)) if data_size_out else None
        cin = ctypes.create_string_buffer(ctx, max(len(ctx), 1)) if ctx is not None else None
        if ctx_size_out is None:
            ctx_size_out = len(ctx) if ctx is not None else 0
        cout = ctypes.create_string_buffer(max(ctx_size_out, 1)) if ctx_size_out else None
        if cpu is not None:
            flags |= BPF_F_TEST_RUN_ON_CPU
        fields = {"test.prog_fd": None, "test.repeat": repeat, "test.flags": flags, "test.cpu": cpu or 0}
        if din is not None:
            fields.update({"test.data_in": ctypes.addressof(din), "test.data_size_in": len(data)})
        if dout is not None:
            fields.update({"test.data_out": ctypes.addressof(dout), "test.data_size_out": data_size_out})
        if cin is not None:
            fields.update({"test.ctx_in": ctypes.addressof(cin), "test.ctx_size_in": len(ctx)})
        if cout is not None:
            fields.update({"test.ctx_out": ctypes.addressof(cout), "test.ctx_size_out": ctx_size_out})
        self._enter(U.BPF_PROG_TEST_RUN)
        try:
            fields["test.prog_fd"] = self._fd
            a = U.make_attr(**fields)
            self.sys.bpf(U.BPF_PROG_TEST_RUN, a)
        except OSError as e:
            raise reraise(e, U.BPF_PROG_TEST_RUN, self._target) from None
        finally:
            self._leave()
        t = a.test
        out = dout.raw[:t.data_size_out] if dout is not None else None
        if cout is not None:
            cout_b = cout.raw[:t.ctx_size_out]
        elif cin is not None and self._type() == U.BPF_PROG_TYPE_SYSCALL:
            cout_b = cin.raw[:len(ctx)]
        else:
            cout_b = None
        return TestRun(t.retval, out, cout_b, t.duration)

    def _type(self):
        t = self._prog_type
        if t is None:
            t = self.info().type
        return t

    def __repr__(self):
        return "<Program %s fd %d%s>" % (self._target, self._fd, " closed" if self._closed else "")
