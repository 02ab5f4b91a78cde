"""Helpers of kernel/trace/bpf_trace.c: bpf_trace_printk, bpf_trace_vprintk, bpf_snprintf (its format
checks are bpf_bprintf_prepare's, kernel/bpf/helpers.c).

The text goes to the kernel's trace pipe (``kernel.read_trace_pipe()`` reads it), one line per call, in
/sys/kernel/tracing/trace_pipe's shape: ``<comm>-<pid> [<cpu>] ..... <sec>.<usec>: bpf_trace_printk: <text>``.
"""
import errno
import struct

from ..helpers import helper_impl
from ..memory import M32, M64, Fault
from .common import neg

MAX_TRACE_PRINTK_VARARGS = 3
MAX_BPRINTF_VARARGS = 12
MAX_BPRINTF_BUF = 1024
MAX_BPRINTF_BIN_ARGS = 512


def _isprint(c):
    return 0x20 <= c < 0x7f


def _isspace(c):
    return c in b" \t\n\v\f\r"


def _ispunct(c):
    return _isprint(c) and not chr(c).isalnum() and c != 0x20


def bprintf(run, fmt, args):
    """bpf_bprintf_prepare + bstr_printf: the formatted text of ``fmt`` (bytes up to its NUL) with the u64
    ``args``; -errno when the format is refused (a control character, more conversions than args, an
    unknown conversion)."""
    end = fmt.find(b"\0")
    if end < 0:
        return -errno.EINVAL
    fmt = fmt[:end] + b"\0\0\0\0"
    n = end
    out = []
    i = 0
    spec = 0
    while i < n:
        c = fmt[i]
        if c < 0x80 and not _isprint(c) and not _isspace(c):
            return -errno.EINVAL
        if c != 0x25:  # '%'
            out.append(bytes([c]))
            i += 1
            continue
        if fmt[i + 1] == 0x25:
            out.append(b"%")
            i += 2
            continue
        if spec >= len(args):
            return -errno.EINVAL
        i += 1
        if fmt[i] >= 0x80:
            return -errno.EINVAL
        flags = b""
        while fmt[i] in b"0+- ":
            flags += bytes([fmt[i]])
            i += 1
        width = b""
        if 0x31 <= fmt[i] <= 0x39:
            while 0x30 <= fmt[i] <= 0x39:
                width += bytes([fmt[i]])
                i += 1
        arg = args[spec]
        conv = fmt[i]
        pyfmt = "%" + (flags + width).decode()
        if conv == 0x70:  # 'p'
            nxt = fmt[i + 1]
            if nxt == 0 or _isspace(nxt) or _ispunct(nxt):
                out.append(((pyfmt + "s") % ("%016x" % arg)).encode())
                i += 1
            elif nxt in b"ku" and fmt[i + 2] == 0x73:  # %pks, %pus
                i += 3
                if not (fmt[i] == 0 or _isspace(fmt[i]) or _ispunct(fmt[i])):
                    return -errno.EINVAL
                out.append((pyfmt + "s").encode() % _string(run, arg))
            elif nxt in b"KxsS":
                out.append(((pyfmt + "s") % ("%016x" % arg)).encode())
                i += 2
            elif nxt == 0x42:  # %pB
                out.append(((pyfmt + "s") % ("%#x" % arg)).encode())
                i += 2
            elif nxt in b"iI" and fmt[i + 2] in b"46":
                size = 4 if fmt[i + 2] == 0x34 else 16
                try:
                    ip = run.mem.read(arg, size)
                except Fault:
                    ip = bytes(size)
                out.append(((pyfmt + "s") % _ip(ip, nxt == 0x49)).encode())
                i += 3
            else:
                return -errno.EINVAL
            spec += 1
            continue
        if conv == 0x73:  # 's'
            nxt = fmt[i + 1]
            if not (nxt == 0 or _isspace(nxt) or _ispunct(nxt)):
                return -errno.EINVAL
            out.append((pyfmt + "s").encode() % _string(run, arg))
            i += 1
            spec += 1
            continue
        if conv == 0x63:  # 'c'
            out.append((pyfmt + "c").encode() % (arg & 0xff))
            i += 1
            spec += 1
            continue
        size = 4
        if fmt[i] == 0x6c:
            size = 8
            i += 1
        if fmt[i] == 0x6c:
            i += 1
        conv = fmt[i]
        if conv not in b"iduxX":
            return -errno.EINVAL
        v = arg & (M64 if size == 8 else M32)
        if conv in b"id":
            v = v - (1 << (8 * size)) if v >> (8 * size - 1) else v
            text = (pyfmt + "d") % v
        elif conv == 0x75:
            text = (pyfmt + "d") % v
        else:
            text = (pyfmt + chr(conv)) % v
        out.append(text.encode())
        i += 1
        spec += 1
    return b"".join(out)


def _string(run, addr):
    """What %s prints: the NUL-terminated string at addr (an empty one when it cannot be read)."""
    try:
        r, off = run.mem.resolve(addr, 1)
    except Fault:
        return b""
    data = run.mem.read(addr, min(r.size - off, MAX_BPRINTF_BIN_ARGS))
    return data.split(b"\0", 1)[0]


def _ip(raw, upper):
    if len(raw) == 4:
        return ".".join(str(b) for b in raw) if upper else "%03d.%03d.%03d.%03d" % tuple(raw)
    words = struct.unpack(">8H", raw)
    if upper:
        return ":".join("%04x" % w for w in words)
    return "".join("%04x" % w for w in words)


def trace_printk(run, text):
    """Write a line to the trace pipe (trace_bpf_trace_printk)."""
    t = run.task
    comm = t.comm.decode("latin-1") if t is not None else "<idle>"
    pid = t.pid if t is not None else 0
    ns = run.kernel.clock.ktime_get_ns()
    line = "%16s-%-7d [%03d] ..... %5d.%06d: bpf_trace_printk: %s" % (
        comm, pid, run.cpu, ns // 1000000000, ns // 1000 % 1000000, text.decode("latin-1"))
    run.kernel.trace_pipe.append(line.rstrip("\n"))


@helper_impl("trace_printk")
def bpf_trace_printk(run, r1, r2, r3, r4, r5):
    fmt = run.mem.read(r1, r2 & M32)
    text = bprintf(run, fmt, (r3, r4, r5))
    if isinstance(text, int):
        return text & M64
    trace_printk(run, text[:MAX_BPRINTF_BUF - 1])
    return len(text)


@helper_impl("trace_vprintk")
def bpf_trace_vprintk(run, r1, r2, r3, r4, r5):
    data_len = r4 & M32
    if data_len & 7 or data_len > MAX_BPRINTF_VARARGS * 8 or (data_len and not r3):
        return neg(errno.EINVAL)
    args = struct.unpack("<%dQ" % (data_len // 8), run.mem.read(r3, data_len)) if data_len else ()
    text = bprintf(run, run.mem.read(r1, r2 & M32), args)
    if isinstance(text, int):
        return text & M64
    trace_printk(run, text[:MAX_BPRINTF_BUF - 1])
    return len(text)


@helper_impl("snprintf")
def bpf_snprintf(run, r1, r2, r3, r4, r5):
    """bpf_snprintf(str, str_size, fmt, data, data_len): the length with the NUL."""
    data_len = r5 & M32
    if data_len & 7 or data_len > MAX_BPRINTF_VARARGS * 8 or (data_len and not r4):
        return neg(errno.EINVAL)
    args = struct.unpack("<%dQ" % (data_len // 8), run.mem.read(r4, data_len)) if data_len else ()
    r, off = run.mem.resolve(r3, 1)
    text = bprintf(run, run.mem.read(r3, r.size - off), args)
    if isinstance(text, int):
        return text & M64
    size = r2 & M32
    if size:
        n = min(len(text), size - 1)
        run.mem.write(r1, text[:n] + b"\0")
    return len(text) + 1
