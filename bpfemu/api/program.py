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
retried with a log when none was asked for, as libbpf does) and its last line in the message.
"""
import ctypes
import struct
from collections import namedtuple

from .. import uapi
from .errors import make_error, reraise

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
    """A program type by number, enum name ('BPF_PROG_TYPE_XDP') or short name ('xdp')."""
    if isinstance(t, int):
        return t
    name = t.upper()
    if not name.startswith("BPF_PROG_TYPE_"):
        name = "BPF_PROG_TYPE_" + name
    return getattr(U, name)


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


class Program:
    """A program fd on one backend (``sys``). Close it with :meth:`close` or a ``with`` block."""

    def __init__(self, sys, fd, name=""):
        self.sys, self.fd, self.name = sys, fd, name

    @classmethod
    def load(cls, sys, insns, prog_type, license="GPL", name="", expected_attach_type=0, prog_flags=0,
             log_level=0, log_size=LOG_SIZE, **fields):
        """BPF_PROG_LOAD. Returns a Program; raises BpfError (with ``.log``) when the kernel refuses it."""
        raw = _encode(insns)
        ib = ctypes.create_string_buffer(raw, max(len(raw), 1))
        lic = ctypes.create_string_buffer(license.encode() if isinstance(license, str) else license)
        nm = name.encode() if isinstance(name, str) else name
        ptype = prog_type_number(prog_type)
        level = log_level
        while True:
            log = ctypes.create_string_buffer(log_size) if level else None
            a = U.make_attr(prog_type=ptype, insn_cnt=len(raw) // 8, expected_attach_type=expected_attach_type,
                            prog_flags=prog_flags, log_level=level, log_size=log_size if level else 0, **fields)
            a.prog_load.insns = ctypes.addressof(ib)
            a.prog_load.license = ctypes.addressof(lic)
            a.prog_load.log_buf = ctypes.addressof(log) if log is not None else 0
            ctypes.memmove(ctypes.addressof(a) + type(a.prog_load).prog_name.offset, nm[:15], len(nm[:15]))
            try:
                return cls(sys, sys.bpf(U.BPF_PROG_LOAD, a), nm.decode("latin-1"))
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

    @classmethod
    def from_fd(cls, sys, fd):
        return cls(sys, fd)

    @classmethod
    def from_id(cls, sys, prog_id):
        return cls(sys, sys.bpf(U.BPF_PROG_GET_FD_BY_ID, U.make_attr(prog_id=prog_id)))

    @classmethod
    def from_pin(cls, sys, path):
        p = ctypes.create_string_buffer(path.encode() if isinstance(path, str) else path)
        a = U.make_attr(pathname=ctypes.addressof(p))
        return cls(sys, sys.bpf(U.BPF_OBJ_GET, a))

    def pin(self, path):
        p = ctypes.create_string_buffer(path.encode() if isinstance(path, str) else path)
        self.sys.bpf(U.BPF_OBJ_PIN, U.make_attr(bpf_fd=self.fd, pathname=ctypes.addressof(p)))

    def info(self):
        """OBJ_GET_INFO_BY_FD (with the map ids)."""
        info = U.bpf_prog_info()
        ids = (ctypes.c_uint32 * 64)()
        info.nr_map_ids = 64
        info.map_ids = ctypes.addressof(ids)
        a = U.make_attr(**{"info.bpf_fd": self.fd, "info.info_len": ctypes.sizeof(info),
                           "info.info": ctypes.addressof(info)})
        self.sys.bpf(U.BPF_OBJ_GET_INFO_BY_FD, a)
        return ProgInfo(info, ids[:min(info.nr_map_ids, 64)])

    @property
    def id(self):
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
        fields = {"test.prog_fd": self.fd, "test.repeat": repeat, "test.flags": flags, "test.cpu": cpu or 0}
        if din is not None:
            fields.update({"test.data_in": ctypes.addressof(din), "test.data_size_in": len(data)})
        if dout is not None:
            fields.update({"test.data_out": ctypes.addressof(dout), "test.data_size_out": data_size_out})
        if cin is not None:
            fields.update({"test.ctx_in": ctypes.addressof(cin), "test.ctx_size_in": len(ctx)})
        if cout is not None:
            fields.update({"test.ctx_out": ctypes.addressof(cout), "test.ctx_size_out": ctx_size_out})
        a = U.make_attr(**fields)
        try:
            self.sys.bpf(U.BPF_PROG_TEST_RUN, a)
        except OSError as e:
            raise reraise(e, U.BPF_PROG_TEST_RUN, "program %r" % (self.name or "?")) from None
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
        t = getattr(self, "_prog_type", None)
        if t is None:
            t = self._prog_type = self.info().type
        return t

    def close(self):
        if self.fd is not None:
            self.sys.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "<Program fd %s %r>" % (self.fd, self.name)
