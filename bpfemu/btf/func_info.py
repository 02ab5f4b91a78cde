"""func_info and line_info of BPF_PROG_LOAD, checked against the program's BTF (check_btf_func_early,
check_btf_func and check_btf_line of kernel/bpf/verifier.c).

For the PROG_LOAD handler, in the kernel's order:

1. :func:`check_func_info_early` right after the program's BTF is taken (prog_btf_fd; a kernel BTF is
   EACCES there), before the subprograms are found: the record size, each record's tail, insn_off
   (0 first, then strictly increasing) and type id (a FUNC whose type is a FUNC_PROTO);
2. once the subprograms are known, :func:`check_func_info` (one record per subprogram, at its first
   instruction; subprograms using LD_ABS or tail calls must return a scalar) then
   :func:`check_line_info` (the record size, tails, strictly increasing insn_off below the program's
   length on an instruction with a nonzero opcode, valid line and file name offsets, one record at the
   start of every subprogram).

Each raises OSError (through ``bpf_error``) with the kernel's errno and writes the kernel's log line to
``log`` (a :class:`~bpfemu.btf.log.VerifierLog`, or None). ``read(off, n)`` reads the user's record array
(EFAULT); ``put_rec_size(n)``, when given, writes attr.func_info_rec_size / line_info_rec_size back
when a record's tail is nonzero (the size the kernel knows, so the loader can retry), and may raise
EFAULT.
"""
import errno
import struct
from collections import namedtuple

from ..errors import bpf_error
from . import uapi as U

MIN_BPF_FUNCINFO_SIZE = 8  # struct bpf_func_info: insn_off, type_id
MAX_FUNCINFO_REC_SIZE = 252
MIN_BPF_LINEINFO_SIZE = 16  # struct bpf_line_info: insn_off, file_name_off, line_off, line_col
MAX_LINEINFO_REC_SIZE = 252
INT_MAX = 2**31 - 1
PAGE_SIZE = 4096

FuncInfo = namedtuple("FuncInfo", "insn_off type_id")
LineInfo = namedtuple("LineInfo", "insn_off file_name_off line_off line_col")
# what check_func_info needs to know of a subprogram (struct bpf_subprog_info)
Subprog = namedtuple("Subprog", "start has_ld_abs has_tail_call")


def _fail(log, msg, err=errno.EINVAL):
    if log is not None:
        log.vlog(msg.encode())
    raise bpf_error(err, msg.strip())


def _nonzero_tail(log, put_rec_size, rec_size, what):
    """A record with nonzero bytes past what the kernel knows: the log line, the record size the kernel
    knows written back to the attr, E2BIG."""
    if log is not None:
        log.vlog(b"nonzero tailing record in " + what.encode())
    if put_rec_size is not None:
        put_rec_size(rec_size)
    raise bpf_error(errno.E2BIG, "nonzero tailing record in " + what)


def _check_tail(read, off, expected, actual):
    """bpf_check_uarg_tail_zero of one record: E2BIG when the bytes past ``expected`` are not zero."""
    if actual > PAGE_SIZE:
        raise bpf_error(errno.E2BIG, "record larger than a page")
    if actual > expected and any(read(off + expected, actual - expected)):
        return errno.E2BIG
    return 0


def check_func_info_early(btf, read, rec_size, cnt, log=None, put_rec_size=None):
    """check_btf_func_early: the records of func_info as [FuncInfo]; [] when ``cnt`` is 0.

    ``btf``: the program's :class:`~bpfemu.btf.btf.Btf`; ``rec_size``/``cnt``: attr.func_info_rec_size and
    attr.func_info_cnt. Errors: EINVAL (size, insn_off, type id), E2BIG (a nonzero record tail), EFAULT."""
    if not cnt:
        return []
    if rec_size < MIN_BPF_FUNCINFO_SIZE or rec_size > MAX_FUNCINFO_REC_SIZE or rec_size % 4:
        _fail(log, "invalid func info rec size %u\n" % rec_size)
    min_size = min(MIN_BPF_FUNCINFO_SIZE, rec_size)
    out = []
    prev = 0
    for i in range(cnt):
        off = i * rec_size
        if _check_tail(read, off, MIN_BPF_FUNCINFO_SIZE, rec_size):
            _nonzero_tail(log, put_rec_size, min_size, "func info")
        insn_off, type_id = struct.unpack("<II", bytes(read(off, min_size)))
        if i == 0:
            if insn_off:
                _fail(log, "nonzero insn_off %u for the first func info record" % insn_off)
        elif insn_off <= prev:
            _fail(log, "same or smaller insn offset (%u) than previous func info record (%u)" % (insn_off, prev))
        t = btf.type_by_id(type_id)
        if t is None or t.kind != U.BTF_KIND_FUNC:
            _fail(log, "invalid type id %d in func info" % (type_id - (1 << 32) if type_id >> 31 else type_id))
        proto = btf.type_by_id(t.type)
        if proto is None or proto.kind != U.BTF_KIND_FUNC_PROTO:
            raise bpf_error(errno.EINVAL, "func info type %d is no function" % type_id)  # BTF_LOAD forbids it
        prev = insn_off
        out.append(FuncInfo(insn_off, type_id))
    return out


def _scalar_return(btf, proto):
    t, _ = btf.skip_modifiers(proto.type)
    if t is None:
        return False
    return (t.kind == U.BTF_KIND_INT and t.size <= 8) or t.kind in (U.BTF_KIND_ENUM, U.BTF_KIND_ENUM64)


def check_func_info(btf, records, subprogs, log=None):
    """check_btf_func: ``records`` (from :func:`check_func_info_early`) against the subprograms, a list
    of :class:`Subprog` (or of start offsets) in order. Returns each function's linkage (func_info_aux)."""
    if not records:
        return []
    subprogs = [s if isinstance(s, Subprog) else Subprog(s, False, False) for s in subprogs]
    if len(records) != len(subprogs):
        _fail(log, "number of funcs in func_info doesn't match number of subprogs\n")
    linkage = []
    for i, (rec, sub) in enumerate(zip(records, subprogs)):
        if sub.start != rec.insn_off:
            _fail(log, "func_info BTF section doesn't match subprog layout in BPF program\n")
        t = btf.type_by_id(rec.type_id)
        linkage.append(t.vlen)
        scalar = _scalar_return(btf, btf.type_by_id(t.type))
        if i and not scalar and sub.has_ld_abs:
            _fail(log, "LD_ABS is only allowed in functions that return 'int'.\n")
        if i and not scalar and sub.has_tail_call:
            _fail(log, "tail_call is only allowed in functions that return 'int'.\n")
    return linkage


def check_line_info(btf, read, rec_size, cnt, insns, subprog_starts, log=None, put_rec_size=None):
    """check_btf_line: the records of line_info as [LineInfo]; [] when ``cnt`` is 0.

    ``insns``: the program's instructions (8-byte records, bytes), or its length with ``insns`` as an int
    and every opcode taken as nonzero; ``subprog_starts``: the first instruction of each subprogram.
    Errors: EINVAL (sizes, without a log line as in the kernel; offsets, names, a subprogram without a
    record), E2BIG (a nonzero record tail), EFAULT."""
    if not cnt:
        return []
    if cnt > INT_MAX // MIN_BPF_LINEINFO_SIZE:
        raise bpf_error(errno.EINVAL, "line_info_cnt too large")
    if rec_size < MIN_BPF_LINEINFO_SIZE or rec_size > MAX_LINEINFO_REC_SIZE or rec_size & 3:
        raise bpf_error(errno.EINVAL, "invalid line info rec size %u" % rec_size)
    prog_len = insns if isinstance(insns, int) else len(insns) // 8
    starts = [s.start if isinstance(s, Subprog) else s for s in subprog_starts]
    ncopy = min(MIN_BPF_LINEINFO_SIZE, rec_size)
    out = []
    s = 0
    prev = 0
    for i in range(cnt):
        off = i * rec_size
        if _check_tail(read, off, MIN_BPF_LINEINFO_SIZE, rec_size):
            _nonzero_tail(log, put_rec_size, MIN_BPF_LINEINFO_SIZE, "line_info")
        li = LineInfo(*struct.unpack("<IIII", bytes(read(off, ncopy))))
        if (i and li.insn_off <= prev) or li.insn_off >= prog_len:
            _fail(log, "Invalid line_info[%u].insn_off:%u (prev_offset:%u prog->len:%u)\n"
                  % (i, li.insn_off, prev, prog_len))
        if not isinstance(insns, int) and not insns[li.insn_off * 8]:
            _fail(log, "Invalid insn code at line_info[%u].insn_off\n" % i)
        if btf.str_by_offset(li.line_off) is None or btf.str_by_offset(li.file_name_off) is None:
            _fail(log, "Invalid line_info[%u].line_off or .file_name_off\n" % i)
        if s != len(starts):
            if li.insn_off == starts[s]:
                s += 1
            elif starts[s] < li.insn_off:
                _fail(log, "missing bpf_line_info for func#%u\n" % s)
        prev = li.insn_off
        out.append(li)
    if s != len(starts):
        _fail(log, "missing bpf_line_info for %u funcs starting from func#%u\n" % (len(starts) - s, s))
    return out
