"""BPF_BTF_LOAD's validation: btf_parse() of kernel/bpf/btf.c.

The blob is checked in the kernel's order, each failure with the kernel's errno
and log line:

1. the header (``btf_parse_hdr``): hdr_len, unknown header bytes, magic,
   version, flags, then the two sections' offsets and lengths;
2. the string section (``btf_parse_str_sec``): at the end, NUL-terminated,
   starting with an empty string;
3. every type record in turn (``btf_check_all_metas``): info bits, kind,
   name offset, then the kind's own rules (sizes, vlen, kflag, names, ids);
4. every type that refers to others is resolved (``btf_check_all_types``): a
   depth-first walk with an explicit stack of at most 32 entries that finds
   loops and sizes, and checks each struct member against its type;
5. chains of modifiers and type tags (``btf_check_type_tags``);
6. the special fields of structs (``btf_parse_struct_metas``, see
   :mod:`bpfemu.btf.fields`).

With a log level, every type checked in step 3 is also written to the log
("[id] KIND name details") and the header is dumped first, as the kernel does.
"""
import errno

from ..errors import ENOTSUPP, bpf_error
from . import uapi as U
from .btf import Btf, Header
from .fields import parse_struct_metas
from .log import BPF_LOG_KERNEL, BytesBuffer, HeadLog, VerifierLog
from .vmlinux import vmlinux_btf
from .types import (VOID, BtfType, int_is_regular, is_decl_tag_target, is_modifier,
                    is_resolve_source_only, is_struct, needs_resolve, nosize_or_null)

KSYM_NAME_LEN = 512
MAX_RESOLVE_DEPTH = 32
BITS_PER_U128 = 128
BTF_INFO_MASK = 0x9F00FFFF
BTF_INT_MASK = 0x0FFFFFFF
U32 = 0xFFFFFFFF

CHECK_META, CHECK_TYPE = 0, 1
RESOLVE_TBD, RESOLVE_PTR, RESOLVE_STRUCT_OR_ARRAY = 0, 1, 2
NOT_VISITED, VISITED, RESOLVED = 0, 1, 2

KIND_STR = [s.encode() for s in U.KIND_STR]

# lib/ctype.c classes for the 256 byte values (the kernel's isalpha/isalnum/isprint are Latin-1)
_UPPER = set(range(65, 91)) | set(range(192, 223)) - {215}
_LOWER = set(range(97, 123)) | set(range(223, 256)) - {247}
_ALPHA = frozenset(_UPPER | _LOWER)
_ALNUM = frozenset(_ALPHA | set(range(48, 58)))
_PRINT = frozenset(set(range(32, 127)) | set(range(160, 256)))
_FIRST_OK = frozenset(_ALPHA | {ord("_"), ord(".")})
_NEXT_OK = frozenset(_ALNUM | {ord("_"), ord(".")})


def _bits_roundup_bytes(bits):
    return (bits >> 3) + (1 if bits & 7 else 0)


def _is_power_of_2(n):
    return n != 0 and (n & (n - 1)) == 0


class _Fail(Exception):
    """An error return of one of the kernel's check functions (negative errno in C)."""

    def __init__(self, err):
        Exception.__init__(self, err)
        self.err = err


class Env:
    """struct btf_verifier_env: the BTF being checked, the log, the resolve stack."""

    def __init__(self, btf, log):
        self.btf = btf
        self.log = log
        self.log_type_id = 0
        self.phase = CHECK_META
        self.resolve_mode = RESOLVE_TBD
        self.stack = []  # [type, type_id, next_member]
        self.visit_states = None
        self.tag_kflag = True  # the kernel version's btf_tag_kflag (profile): DECL_TAG and TYPE_TAG take a kflag
        self.printable_sections = True  # profile.btf_section_names == "printable" (else identifiers)

    # -- the log -----------------------------------------------------------------------------
    def vlog(self, msg):
        if self.log.level:
            self.log.vlog(msg)

    def log_type(self, t, fmt=None, details=True):
        """__btf_verifier_log_type: "[id] KIND name[ details][ fmt]\\n"."""
        log = self.log
        if not log.level:
            return
        if log.level == BPF_LOG_KERNEL and not fmt:
            return
        log.vlog(b"[%d] %s %s%s" % (self.log_type_id, KIND_STR[t.kind], self.btf.log_name(t.name_off),
                                     b" " if details else b""))
        if details:
            LOG_DETAILS[t.kind](self, t)
        if fmt:
            log.vlog(b" ")
            log.vlog(fmt)
        log.vlog(b"\n")

    def log_basic(self, t, fmt=None):
        self.log_type(t, fmt, details=False)

    def log_member(self, struct_t, m, fmt=None):
        """btf_verifier_log_member: the struct line (after CHECK_META) then "\\tname type_id=..."."""
        log = self.log
        if not log.level:
            return
        if log.level == BPF_LOG_KERNEL and not fmt:
            return
        if self.phase != CHECK_META:
            self.log_type(struct_t, None)
        name = self.btf.log_name(m[0])
        if struct_t.kflag:
            log.vlog(b"\t%s type_id=%d bitfield_size=%d bits_offset=%d" % (name, m[1], m[2] >> 24, m[2] & 0xFFFFFF))
        else:
            log.vlog(b"\t%s type_id=%d bits_offset=%d" % (name, m[1], m[2]))
        if fmt:
            log.vlog(b" ")
            log.vlog(fmt)
        log.vlog(b"\n")

    def log_vsi(self, datasec, vsi, fmt=None):
        log = self.log
        if not log.level:
            return
        if log.level == BPF_LOG_KERNEL and not fmt:
            return
        if self.phase != CHECK_META:
            self.log_type(datasec, None)
        log.vlog(b"\t type_id=%d offset=%d size=%d" % vsi)
        if fmt:
            log.vlog(b" ")
            log.vlog(fmt)
        log.vlog(b"\n")

    def fail(self, err):
        raise _Fail(err)

    # -- names -------------------------------------------------------------------------------
    def name_valid_identifier(self, off):
        s = self.btf.str_by_offset(off)
        if not s or s[0] not in _FIRST_OK:
            return False
        if len(s) > KSYM_NAME_LEN:
            return False
        return all(c in _NEXT_OK for c in s[1:])

    def name_valid_section(self, off):
        if not self.printable_sections:
            return self.name_valid_identifier(off)
        s = self.btf.str_by_offset(off)
        if not s or len(s) > KSYM_NAME_LEN:
            return False
        return all(c in _PRINT for c in s)

    # -- resolve state -------------------------------------------------------------------------
    def is_resolve_sink(self, nt):
        mode = self.resolve_mode
        if mode == RESOLVE_TBD:
            return not needs_resolve(nt)
        if mode == RESOLVE_PTR:
            return not is_modifier(nt) and nt.kind != U.BTF_KIND_PTR
        return not is_modifier(nt) and nt.kind != U.BTF_KIND_ARRAY and not is_struct(nt)

    def is_resolved(self, type_id):
        start = self.btf.start_id
        if type_id < start:
            return True
        return self.visit_states[type_id - start] == RESOLVED

    def push(self, t, type_id):
        """env_stack_push: 0, or -E2BIG (stack full) / -EEXIST (visited: a loop)."""
        if len(self.stack) == MAX_RESOLVE_DEPTH:
            return -errno.E2BIG
        start = self.btf.start_id
        if type_id < start or self.visit_states[type_id - start] != NOT_VISITED:
            return -errno.EEXIST
        self.visit_states[type_id - start] = VISITED
        self.stack.append([t, type_id, 0])
        if self.resolve_mode == RESOLVE_TBD:
            if t.kind == U.BTF_KIND_PTR:
                self.resolve_mode = RESOLVE_PTR
            elif is_struct(t) or t.kind == U.BTF_KIND_ARRAY:
                self.resolve_mode = RESOLVE_STRUCT_OR_ARRAY
        return 0

    def set_next_member(self, n):
        self.stack[-1][2] = n

    def pop_resolved(self, resolved_id, resolved_size):
        type_id = self.stack.pop()[1] - self.btf.start_id
        self.btf.resolved_sizes[type_id] = resolved_size & U32
        self.btf.resolved_ids[type_id] = resolved_id
        self.visit_states[type_id] = RESOLVED

    def type_id_resolve(self, type_id):
        """btf_type_id_resolve: (type, id) that a resolved type resolved to."""
        rid = self.btf.resolved_type_id(type_id)
        return self.btf.type_by_id(rid), rid


# ---------------------------------------------------------------------------------------------
# log details, one per kind (btf_kind_operations.log_details)

def _int_log(env, t):
    d = t.int_data
    enc = (d >> 24) & 0x0F
    encs = {0: b"(none)", U.BTF_INT_SIGNED: b"SIGNED", U.BTF_INT_CHAR: b"CHAR", U.BTF_INT_BOOL: b"BOOL"}
    env.vlog(b"size=%d bits_offset=%d nr_bits=%d encoding=%s" % (t.size, (d >> 16) & 0xFF, d & 0xFF,
                                                                  encs.get(enc, b"UNKN")))


def _ref_log(env, t):
    env.vlog(b"type_id=%d" % t.type)


def _fwd_log(env, t):
    env.vlog(b"union" if t.kflag else b"struct")


def _array_log(env, t):
    env.vlog(b"type_id=%d index_type_id=%d nr_elems=%d" % t.array)


def _size_vlen_log(env, t):
    env.vlog(b"size=%d vlen=%d" % (t.size, t.vlen))


def _func_proto_log(env, t):
    args = t.params
    n = len(args)
    btf = env.btf
    env.vlog(b"return=%d args=(" % t.type)
    if not n:
        env.vlog(b"void")
    elif n == 1 and not args[0][1]:
        env.vlog(b"vararg")
    else:
        env.vlog(b"%d %s" % (args[0][1], btf.log_name(args[0][0])))
        for a in args[1:n - 1]:
            env.vlog(b", %d %s" % (a[1], btf.log_name(a[0])))
        if n > 1:
            last = args[n - 1]
            if last[1]:
                env.vlog(b", %d %s" % (last[1], btf.log_name(last[0])))
            else:
                env.vlog(b", vararg")
    env.vlog(b")")


def _var_log(env, t):
    env.vlog(b"type_id=%d linkage=%d" % (t.type, t.word(0)))


def _float_log(env, t):
    env.vlog(b"size=%d" % t.size)


def _decl_tag_log(env, t):
    env.vlog(b"type=%d component_idx=%d" % (t.type, t.component_idx))


def _no_log(env, t):
    pass


LOG_DETAILS = [_no_log, _int_log, _ref_log, _array_log, _size_vlen_log, _size_vlen_log, _size_vlen_log, _fwd_log,
               _ref_log, _ref_log, _ref_log, _ref_log, _ref_log, _func_proto_log, _var_log, _size_vlen_log,
               _float_log, _decl_tag_log, _ref_log, _size_vlen_log] + [_no_log] * 12


# ---------------------------------------------------------------------------------------------
# check_meta, one per kind: returns the bytes of kind-specific data after the 12-byte header

def _meta_short(env, t, meta_left, meta_needed):
    if meta_left < meta_needed:
        env.log_basic(t, b"meta_left:%d meta_needed:%d" % (meta_left, meta_needed))
        env.fail(-errno.EINVAL)


def _int_check_meta(env, t, meta_left):
    _meta_short(env, t, meta_left, 4)
    if t.vlen:
        env.log_type(t, b"vlen != 0")
        env.fail(-errno.EINVAL)
    if t.kflag:
        env.log_type(t, b"Invalid btf_info kind_flag")
        env.fail(-errno.EINVAL)
    d = t.int_data
    if d & ~BTF_INT_MASK & U32:
        env.log_basic(t, b"Invalid int_data:%x" % d)
        env.fail(-errno.EINVAL)
    nr_bits = (d & 0xFF) + ((d >> 16) & 0xFF)
    if nr_bits > BITS_PER_U128:
        env.log_type(t, b"nr_bits exceeds %d" % BITS_PER_U128)
        env.fail(-errno.EINVAL)
    if _bits_roundup_bytes(nr_bits) > t.size:
        env.log_type(t, b"nr_bits exceeds type_size")
        env.fail(-errno.EINVAL)
    enc = (d >> 24) & 0x0F
    if enc and enc not in (U.BTF_INT_SIGNED, U.BTF_INT_CHAR, U.BTF_INT_BOOL):
        env.log_type(t, b"Unsupported encoding")
        env.fail(-ENOTSUPP)
    env.log_type(t)
    return 4


def _ref_check_meta(env, t, meta_left):
    if t.vlen:
        env.log_type(t, b"vlen != 0")
        env.fail(-errno.EINVAL)
    if t.kflag and not (t.kind == U.BTF_KIND_TYPE_TAG and env.tag_kflag):
        env.log_type(t, b"Invalid btf_info kind_flag")
        env.fail(-errno.EINVAL)
    if t.type > U.BTF_MAX_TYPE:
        env.log_type(t, b"Invalid type_id")
        env.fail(-errno.EINVAL)
    if t.kind == U.BTF_KIND_TYPEDEF:
        if not t.name_off or not env.name_valid_identifier(t.name_off):
            env.log_type(t, b"Invalid name")
            env.fail(-errno.EINVAL)
    elif t.kind == U.BTF_KIND_TYPE_TAG:
        if not env.btf.str_by_offset(t.name_off):
            env.log_type(t, b"Invalid name")
            env.fail(-errno.EINVAL)
    elif t.name_off:
        env.log_type(t, b"Invalid name")
        env.fail(-errno.EINVAL)
    env.log_type(t)
    return 0


def _fwd_check_meta(env, t, meta_left):
    if t.vlen:
        env.log_type(t, b"vlen != 0")
        env.fail(-errno.EINVAL)
    if t.type:
        env.log_type(t, b"type != 0")
        env.fail(-errno.EINVAL)
    if not t.name_off or not env.name_valid_identifier(t.name_off):
        env.log_type(t, b"Invalid name")
        env.fail(-errno.EINVAL)
    env.log_type(t)
    return 0


def _array_check_meta(env, t, meta_left):
    _meta_short(env, t, meta_left, 12)
    if t.name_off:
        env.log_type(t, b"Invalid name")
        env.fail(-errno.EINVAL)
    if t.vlen:
        env.log_type(t, b"vlen != 0")
        env.fail(-errno.EINVAL)
    if t.kflag:
        env.log_type(t, b"Invalid btf_info kind_flag")
        env.fail(-errno.EINVAL)
    if t.size:
        env.log_type(t, b"size != 0")
        env.fail(-errno.EINVAL)
    elem, index, _n = t.array
    if not elem or elem > U.BTF_MAX_TYPE:
        env.log_type(t, b"Invalid elem")
        env.fail(-errno.EINVAL)
    if not index or index > U.BTF_MAX_TYPE:
        env.log_type(t, b"Invalid index")
        env.fail(-errno.EINVAL)
    env.log_type(t)
    return 12


def _struct_check_meta(env, t, meta_left):
    is_union = t.kind == U.BTF_KIND_UNION
    meta_needed = t.vlen * 12
    _meta_short(env, t, meta_left, meta_needed)
    btf = env.btf
    if t.name_off and not env.name_valid_identifier(t.name_off):
        env.log_type(t, b"Invalid name")
        env.fail(-errno.EINVAL)
    env.log_type(t)
    last_offset = 0
    for m in t.members:
        name_off, mtype, _o = m
        if not btf.name_offset_valid(name_off):
            env.log_member(t, m, b"Invalid member name_offset:%d" % name_off)
            env.fail(-errno.EINVAL)
        if name_off and not env.name_valid_identifier(name_off):
            env.log_member(t, m, b"Invalid name")
            env.fail(-errno.EINVAL)
        if not mtype or mtype > U.BTF_MAX_TYPE:
            env.log_member(t, m, b"Invalid type_id")
            env.fail(-errno.EINVAL)
        offset = Btf.member_bit_offset(t, m)
        if is_union and offset:
            env.log_member(t, m, b"Invalid member bits_offset")
            env.fail(-errno.EINVAL)
        if last_offset > offset:
            env.log_member(t, m, b"Invalid member bits_offset")
            env.fail(-errno.EINVAL)
        if _bits_roundup_bytes(offset) > t.size:
            env.log_member(t, m, b"Member bits_offset exceeds its struct size")
            env.fail(-errno.EINVAL)
        env.log_member(t, m)
        last_offset = offset
    return meta_needed


def _enum_check_meta(env, t, meta_left, enum64=False):
    per = 12 if enum64 else 8
    meta_needed = t.vlen * per
    _meta_short(env, t, meta_left, meta_needed)
    if t.size > 8 or not _is_power_of_2(t.size):
        env.log_type(t, b"Unexpected size")
        env.fail(-errno.EINVAL)
    if t.name_off and not env.name_valid_identifier(t.name_off):
        env.log_type(t, b"Invalid name")
        env.fail(-errno.EINVAL)
    env.log_type(t)
    btf = env.btf
    for e in (t.enum64s if enum64 else t.enums):
        name_off = e[0]
        if not btf.name_offset_valid(name_off):
            env.vlog(b"\tInvalid name_offset:%d" % name_off)
            env.fail(-errno.EINVAL)
        if not name_off or not env.name_valid_identifier(name_off):
            env.log_type(t, b"Invalid name")
            env.fail(-errno.EINVAL)
        if env.log.level == BPF_LOG_KERNEL:
            continue
        if enum64:
            v = e[1] | (e[2] << 32)
            if t.kflag and v >= 1 << 63:
                v -= 1 << 64
        else:
            v = e[1]
            if t.kflag and v >= 1 << 31:
                v -= 1 << 32
        env.vlog(b"\t%s val=%d\n" % (btf.log_name(name_off), v))
    return meta_needed


def _enum64_check_meta(env, t, meta_left):
    return _enum_check_meta(env, t, meta_left, enum64=True)


def _func_proto_check_meta(env, t, meta_left):
    meta_needed = t.vlen * 8
    _meta_short(env, t, meta_left, meta_needed)
    if t.name_off:
        env.log_type(t, b"Invalid name")
        env.fail(-errno.EINVAL)
    if t.kflag:
        env.log_type(t, b"Invalid btf_info kind_flag")
        env.fail(-errno.EINVAL)
    env.log_type(t)
    return meta_needed


def _func_check_meta(env, t, meta_left):
    if not t.name_off or not env.name_valid_identifier(t.name_off):
        env.log_type(t, b"Invalid name")
        env.fail(-errno.EINVAL)
    if t.vlen > U.BTF_FUNC_GLOBAL:
        env.log_type(t, b"Invalid func linkage")
        env.fail(-errno.EINVAL)
    if t.kflag:
        env.log_type(t, b"Invalid btf_info kind_flag")
        env.fail(-errno.EINVAL)
    env.log_type(t)
    return 0


def _var_check_meta(env, t, meta_left):
    _meta_short(env, t, meta_left, 4)
    if t.vlen:
        env.log_type(t, b"vlen != 0")
        env.fail(-errno.EINVAL)
    if t.kflag:
        env.log_type(t, b"Invalid btf_info kind_flag")
        env.fail(-errno.EINVAL)
    if not t.name_off or not env.name_valid_identifier(t.name_off):
        env.log_type(t, b"Invalid name")
        env.fail(-errno.EINVAL)
    if not t.type or t.type > U.BTF_MAX_TYPE:
        env.log_type(t, b"Invalid type_id")
        env.fail(-errno.EINVAL)
    if t.word(0) not in (U.BTF_VAR_STATIC, U.BTF_VAR_GLOBAL_ALLOCATED):
        env.log_type(t, b"Linkage not supported")
        env.fail(-errno.EINVAL)
    env.log_type(t)
    return 4


def _datasec_check_meta(env, t, meta_left):
    meta_needed = t.vlen * 12
    _meta_short(env, t, meta_left, meta_needed)
    if not t.size:
        env.log_type(t, b"size == 0")
        env.fail(-errno.EINVAL)
    if t.kflag:
        env.log_type(t, b"Invalid btf_info kind_flag")
        env.fail(-errno.EINVAL)
    if not t.name_off or not env.name_valid_section(t.name_off):
        env.log_type(t, b"Invalid name")
        env.fail(-errno.EINVAL)
    env.log_type(t)
    last_end = 0
    total = 0
    for vsi in t.vsis:
        vtype, off, size = vsi
        if not vtype or vtype > U.BTF_MAX_TYPE:
            env.log_vsi(t, vsi, b"Invalid type_id")
            env.fail(-errno.EINVAL)
        if off < last_end or off >= t.size:
            env.log_vsi(t, vsi, b"Invalid offset")
            env.fail(-errno.EINVAL)
        if not size or size > t.size:
            env.log_vsi(t, vsi, b"Invalid size")
            env.fail(-errno.EINVAL)
        last_end = off + size
        if last_end > t.size:
            env.log_vsi(t, vsi, b"Invalid offset+size")
            env.fail(-errno.EINVAL)
        env.log_vsi(t, vsi)
        total += size
    if t.size < total:
        env.log_type(t, b"Invalid btf_info size")
        env.fail(-errno.EINVAL)
    return meta_needed


def _float_check_meta(env, t, meta_left):
    if t.vlen:
        env.log_type(t, b"vlen != 0")
        env.fail(-errno.EINVAL)
    if t.kflag:
        env.log_type(t, b"Invalid btf_info kind_flag")
        env.fail(-errno.EINVAL)
    if t.size not in (2, 4, 8, 12, 16):
        env.log_type(t, b"Invalid type_size")
        env.fail(-errno.EINVAL)
    env.log_type(t)
    return 0


def _decl_tag_check_meta(env, t, meta_left):
    _meta_short(env, t, meta_left, 4)
    if not env.btf.str_by_offset(t.name_off):
        env.log_type(t, b"Invalid value")
        env.fail(-errno.EINVAL)
    if t.vlen:
        env.log_type(t, b"vlen != 0")
        env.fail(-errno.EINVAL)
    if t.kflag and not env.tag_kflag:
        env.log_type(t, b"Invalid btf_info kind_flag")
        env.fail(-errno.EINVAL)
    if t.component_idx < -1:
        env.log_type(t, b"Invalid component_idx")
        env.fail(-errno.EINVAL)
    env.log_type(t)
    return 4


# ---------------------------------------------------------------------------------------------
# check_member / check_kflag_member: does a member of this type fit in its struct?

def _df_check_member(env, st, m, mt):
    env.log_basic(st, b"Unsupported check_member")
    env.fail(-errno.EINVAL)


def _df_check_kflag_member(env, st, m, mt):
    env.log_basic(st, b"Unsupported check_kflag_member")
    env.fail(-errno.EINVAL)


def _generic_check_kflag_member(env, st, m, mt):
    if m[2] >> 24:
        env.log_member(st, m, b"Invalid member bitfield_size")
        env.fail(-errno.EINVAL)
    CHECK_MEMBER[mt.kind](env, st, m, mt)


def _int_check_member(env, st, m, mt):
    d = mt.int_data
    bits_off = m[2]
    int_off = (d >> 16) & 0xFF
    if U32 - bits_off < int_off:
        env.log_member(st, m, b"bits_offset exceeds U32_MAX")
        env.fail(-errno.EINVAL)
    bits_off += int_off
    bytes_offset = bits_off >> 3
    nr_copy_bits = (d & 0xFF) + (bits_off & 7)
    if nr_copy_bits > BITS_PER_U128:
        env.log_member(st, m, b"nr_copy_bits exceeds 128")
        env.fail(-errno.EINVAL)
    if st.size < bytes_offset or st.size - bytes_offset < _bits_roundup_bytes(nr_copy_bits):
        env.log_member(st, m, b"Member exceeds struct_size")
        env.fail(-errno.EINVAL)


def _int_check_kflag_member(env, st, m, mt):
    if not int_is_regular(mt):
        env.log_member(st, m, b"Invalid member base type")
        env.fail(-errno.EINVAL)
    nr_bits = m[2] >> 24
    bits_off = m[2] & 0xFFFFFF
    int_bits = mt.int_data & 0xFF
    if not nr_bits:
        if bits_off & 7:
            env.log_member(st, m, b"Invalid member offset")
            env.fail(-errno.EINVAL)
        nr_bits = int_bits
    elif nr_bits > int_bits:
        env.log_member(st, m, b"Invalid member bitfield_size")
        env.fail(-errno.EINVAL)
    bytes_offset = bits_off >> 3
    nr_copy_bits = nr_bits + (bits_off & 7)
    if nr_copy_bits > BITS_PER_U128:
        env.log_member(st, m, b"nr_copy_bits exceeds 128")
        env.fail(-errno.EINVAL)
    if st.size < bytes_offset or st.size - bytes_offset < _bits_roundup_bytes(nr_copy_bits):
        env.log_member(st, m, b"Member exceeds struct_size")
        env.fail(-errno.EINVAL)


def _modifier_check_member(env, st, m, mt, kflag=False):
    r = env.btf.type_id_size(m[1])
    if r is None:
        env.log_member(st, m, b"Invalid member")
        env.fail(-errno.EINVAL)
    rt, rid, _size = r
    rm = (m[0], rid, m[2])
    (CHECK_KFLAG_MEMBER if kflag else CHECK_MEMBER)[rt.kind](env, st, rm, rt)


def _modifier_check_kflag_member(env, st, m, mt):
    _modifier_check_member(env, st, m, mt, kflag=True)


def _ptr_check_member(env, st, m, mt):
    bits_off = m[2]
    if bits_off & 7:
        env.log_member(st, m, b"Member is not byte aligned")
        env.fail(-errno.EINVAL)
    if (st.size - (bits_off >> 3)) & U32 < 8:
        env.log_member(st, m, b"Member exceeds struct_size")
        env.fail(-errno.EINVAL)


def _array_check_member(env, st, m, mt):
    bits_off = m[2]
    if bits_off & 7:
        env.log_member(st, m, b"Member is not byte aligned")
        env.fail(-errno.EINVAL)
    r = env.btf.type_id_size(m[1])
    array_size = r[2] if r else 0
    if (st.size - (bits_off >> 3)) & U32 < array_size:
        env.log_member(st, m, b"Member exceeds struct_size")
        env.fail(-errno.EINVAL)


def _struct_check_member(env, st, m, mt):
    bits_off = m[2]
    if bits_off & 7:
        env.log_member(st, m, b"Member is not byte aligned")
        env.fail(-errno.EINVAL)
    if (st.size - (bits_off >> 3)) & U32 < mt.size:
        env.log_member(st, m, b"Member exceeds struct_size")
        env.fail(-errno.EINVAL)


_enum_check_member = _struct_check_member


def _enum_check_kflag_member(env, st, m, mt):
    bits_off = m[2] & 0xFFFFFF
    nr_bits = m[2] >> 24
    if not nr_bits:
        if bits_off & 7:
            env.log_member(st, m, b"Member is not byte aligned")
            env.fail(-errno.EINVAL)
        nr_bits = 32
    elif nr_bits > 32:
        env.log_member(st, m, b"Invalid member bitfield_size")
        env.fail(-errno.EINVAL)
    if st.size < _bits_roundup_bytes(bits_off + nr_bits):
        env.log_member(st, m, b"Member exceeds struct_size")
        env.fail(-errno.EINVAL)


def _float_check_member(env, st, m, mt):
    align_bits = min(8, mt.size) * 8
    if m[2] % align_bits:
        env.log_member(st, m, b"Member is not properly aligned")
        env.fail(-errno.EINVAL)
    if m[2] // 8 + mt.size > st.size:
        env.log_member(st, m, b"Member exceeds struct_size")
        env.fail(-errno.EINVAL)


K = U
CHECK_MEMBER = {
    K.BTF_KIND_INT: _int_check_member, K.BTF_KIND_PTR: _ptr_check_member, K.BTF_KIND_ARRAY: _array_check_member,
    K.BTF_KIND_STRUCT: _struct_check_member, K.BTF_KIND_UNION: _struct_check_member,
    K.BTF_KIND_ENUM: _enum_check_member, K.BTF_KIND_FWD: _df_check_member,
    K.BTF_KIND_TYPEDEF: _modifier_check_member, K.BTF_KIND_VOLATILE: _modifier_check_member,
    K.BTF_KIND_CONST: _modifier_check_member, K.BTF_KIND_RESTRICT: _modifier_check_member,
    K.BTF_KIND_FUNC: _df_check_member, K.BTF_KIND_FUNC_PROTO: _df_check_member, K.BTF_KIND_VAR: _df_check_member,
    K.BTF_KIND_DATASEC: _df_check_member, K.BTF_KIND_FLOAT: _float_check_member,
    K.BTF_KIND_DECL_TAG: _df_check_member, K.BTF_KIND_TYPE_TAG: _modifier_check_member,
    K.BTF_KIND_ENUM64: _enum_check_member,
}
CHECK_KFLAG_MEMBER = {
    K.BTF_KIND_INT: _int_check_kflag_member, K.BTF_KIND_PTR: _generic_check_kflag_member,
    K.BTF_KIND_ARRAY: _generic_check_kflag_member, K.BTF_KIND_STRUCT: _generic_check_kflag_member,
    K.BTF_KIND_UNION: _generic_check_kflag_member, K.BTF_KIND_ENUM: _enum_check_kflag_member,
    K.BTF_KIND_FWD: _df_check_kflag_member, K.BTF_KIND_TYPEDEF: _modifier_check_kflag_member,
    K.BTF_KIND_VOLATILE: _modifier_check_kflag_member, K.BTF_KIND_CONST: _modifier_check_kflag_member,
    K.BTF_KIND_RESTRICT: _modifier_check_kflag_member, K.BTF_KIND_FUNC: _df_check_kflag_member,
    K.BTF_KIND_FUNC_PROTO: _df_check_kflag_member, K.BTF_KIND_VAR: _df_check_kflag_member,
    K.BTF_KIND_DATASEC: _df_check_kflag_member, K.BTF_KIND_FLOAT: _generic_check_kflag_member,
    K.BTF_KIND_DECL_TAG: _df_check_kflag_member, K.BTF_KIND_TYPE_TAG: _modifier_check_kflag_member,
    K.BTF_KIND_ENUM64: _enum_check_kflag_member,
}


def _check_member(env, st, m, mt):
    (CHECK_KFLAG_MEMBER if st.kflag else CHECK_MEMBER)[mt.kind](env, st, m, mt)


# ---------------------------------------------------------------------------------------------
# resolve, one per kind that refers to other types (a step of the depth-first walk)

def _df_resolve(env, v):
    env.log_basic(v[0], b"Unsupported resolve")
    return -errno.EINVAL


def _size_or_sizeless_ok(env, v, next_id, next_type):
    """The end of modifier/ptr resolve: next must have a size, or be void/fwd/func_proto."""
    btf = env.btf
    r = btf.type_id_size(next_id)
    if r is None:
        if env.is_resolved(next_id):
            next_type, next_id = env.type_id_resolve(next_id)
        if next_type is not VOID and next_type.kind not in (U.BTF_KIND_FWD, U.BTF_KIND_FUNC_PROTO):
            env.log_type(v[0], b"Invalid type_id")
            return -errno.EINVAL
    else:
        next_id = r[1]
    env.pop_resolved(next_id, 0)
    return 0


def _modifier_resolve(env, v):
    t = v[0]
    next_id = t.type
    nt = env.btf.type_by_id(next_id)
    if nt is None or is_resolve_source_only(nt):
        env.log_type(t, b"Invalid type_id")
        return -errno.EINVAL
    if not env.is_resolve_sink(nt) and not env.is_resolved(next_id):
        return env.push(nt, next_id)
    return _size_or_sizeless_ok(env, v, next_id, nt)


def _ptr_to_ptr_pending(env, nt, next_id):
    """After a modifier that resolved to a ptr: that ptr must be walked too (ptr loops)."""
    if is_modifier(nt):
        rt, rid = env.type_id_resolve(next_id)
        if rt is not None and rt.kind == U.BTF_KIND_PTR and not env.is_resolve_sink(rt) \
                and not env.is_resolved(rid):
            return env.push(rt, rid)
    return None


def _var_resolve(env, v):
    t = v[0]
    next_id = t.type
    btf = env.btf
    nt = btf.type_by_id(next_id)
    if nt is None or is_resolve_source_only(nt):
        env.log_type(t, b"Invalid type_id")
        return -errno.EINVAL
    if not env.is_resolve_sink(nt) and not env.is_resolved(next_id):
        return env.push(nt, next_id)
    r = _ptr_to_ptr_pending(env, nt, next_id)
    if r is not None:
        return r
    r = btf.type_id_size(next_id)
    if r is None:
        env.log_type(t, b"Invalid type_id")
        return -errno.EINVAL
    env.pop_resolved(r[1], 0)
    return 0


def _ptr_resolve(env, v):
    t = v[0]
    next_id = t.type
    nt = env.btf.type_by_id(next_id)
    if nt is None or is_resolve_source_only(nt):
        env.log_type(t, b"Invalid type_id")
        return -errno.EINVAL
    if not env.is_resolve_sink(nt) and not env.is_resolved(next_id):
        return env.push(nt, next_id)
    r = _ptr_to_ptr_pending(env, nt, next_id)
    if r is not None:
        return r
    return _size_or_sizeless_ok(env, v, next_id, nt)


def _array_resolve(env, v):
    t = v[0]
    btf = env.btf
    elem_id, index_id, nelems = t.array
    it = btf.type_by_id(index_id)
    if nosize_or_null(it) or is_resolve_source_only(it):
        env.log_type(t, b"Invalid index")
        return -errno.EINVAL
    if not env.is_resolve_sink(it) and not env.is_resolved(index_id):
        return env.push(it, index_id)
    r = btf.type_id_size(index_id)
    if r is None or r[0].kind != U.BTF_KIND_INT or not int_is_regular(r[0]):
        env.log_type(t, b"Invalid index")
        return -errno.EINVAL
    et = btf.type_by_id(elem_id)
    if nosize_or_null(et) or is_resolve_source_only(et):
        env.log_type(t, b"Invalid elem")
        return -errno.EINVAL
    if not env.is_resolve_sink(et) and not env.is_resolved(elem_id):
        return env.push(et, elem_id)
    r = btf.type_id_size(elem_id)
    if r is None:
        env.log_type(t, b"Invalid elem")
        return -errno.EINVAL
    et, elem_id, elem_size = r
    if et.kind == U.BTF_KIND_INT and not int_is_regular(et):
        env.log_type(t, b"Invalid array of int")
        return -errno.EINVAL
    if nelems and elem_size > U32 // nelems:
        env.log_type(t, b"Array size overflows U32_MAX")
        return -errno.EINVAL
    env.pop_resolved(elem_id, elem_size * nelems)
    return 0


def _struct_resolve(env, v):
    t, _tid, next_member = v
    btf = env.btf
    members = t.members
    if next_member:
        last = members[next_member - 1]
        if not env.is_resolved(last[1]):
            return -errno.EINVAL
        _check_member(env, t, last, btf.type_by_id(last[1]))
    for i in range(next_member, len(members)):
        m = members[i]
        mt = btf.type_by_id(m[1])
        if nosize_or_null(mt) or is_resolve_source_only(mt):
            env.log_member(t, m, b"Invalid member")
            return -errno.EINVAL
        if not env.is_resolve_sink(mt) and not env.is_resolved(m[1]):
            env.set_next_member(i + 1)
            return env.push(mt, m[1])
        _check_member(env, t, m, mt)
    env.pop_resolved(0, 0)
    return 0


def _func_resolve(env, v):
    t = v[0]
    err = _func_check(env, t)
    if err:
        return err
    env.pop_resolved(t.type, 0)
    return 0


def _datasec_resolve(env, v):
    t, _tid, next_member = v
    btf = env.btf
    env.resolve_mode = RESOLVE_TBD
    vsis = t.vsis
    for i in range(next_member, len(vsis)):
        vsi = vsis[i]
        var_id = vsi[0]
        vt = btf.type_by_id(var_id)
        if vt is None or vt.kind != U.BTF_KIND_VAR:
            env.log_vsi(t, vsi, b"Not a VAR kind member")
            return -errno.EINVAL
        if not env.is_resolve_sink(vt) and not env.is_resolved(var_id):
            env.set_next_member(i + 1)
            return env.push(vt, var_id)
        r = btf.type_id_size(vt.type)
        if r is None:
            env.log_vsi(t, vsi, b"Invalid type")
            return -errno.EINVAL
        if vsi[2] < r[2]:
            env.log_vsi(t, vsi, b"Invalid size")
            return -errno.EINVAL
    env.pop_resolved(0, 0)
    return 0


def _decl_tag_resolve(env, v):
    t = v[0]
    btf = env.btf
    next_id = t.type
    nt = btf.type_by_id(next_id)
    if nt is None or not is_decl_tag_target(nt):
        env.log_type(t, b"Invalid type_id")
        return -errno.EINVAL
    if not env.is_resolve_sink(nt) and not env.is_resolved(next_id):
        return env.push(nt, next_id)
    idx = t.component_idx
    if idx != -1:
        if nt.kind in (U.BTF_KIND_VAR, U.BTF_KIND_TYPEDEF):
            env.log_type(t, b"Invalid component_idx")
            return -errno.EINVAL
        if is_struct(nt):
            vlen = nt.vlen
        else:
            vlen = btf.type_by_id(nt.type).vlen
        if (idx & U32) >= vlen:
            env.log_type(t, b"Invalid component_idx")
            return -errno.EINVAL
    env.pop_resolved(next_id, 0)
    return 0


RESOLVE = {
    K.BTF_KIND_PTR: _ptr_resolve, K.BTF_KIND_ARRAY: _array_resolve, K.BTF_KIND_STRUCT: _struct_resolve,
    K.BTF_KIND_UNION: _struct_resolve, K.BTF_KIND_TYPEDEF: _modifier_resolve, K.BTF_KIND_VOLATILE: _modifier_resolve,
    K.BTF_KIND_CONST: _modifier_resolve, K.BTF_KIND_RESTRICT: _modifier_resolve, K.BTF_KIND_FUNC: _func_resolve,
    K.BTF_KIND_VAR: _var_resolve, K.BTF_KIND_DATASEC: _datasec_resolve, K.BTF_KIND_DECL_TAG: _decl_tag_resolve,
    K.BTF_KIND_TYPE_TAG: _modifier_resolve,
}

CHECK_META = {
    K.BTF_KIND_INT: _int_check_meta, K.BTF_KIND_PTR: _ref_check_meta, K.BTF_KIND_ARRAY: _array_check_meta,
    K.BTF_KIND_STRUCT: _struct_check_meta, K.BTF_KIND_UNION: _struct_check_meta, K.BTF_KIND_ENUM: _enum_check_meta,
    K.BTF_KIND_FWD: _fwd_check_meta, K.BTF_KIND_TYPEDEF: _ref_check_meta, K.BTF_KIND_VOLATILE: _ref_check_meta,
    K.BTF_KIND_CONST: _ref_check_meta, K.BTF_KIND_RESTRICT: _ref_check_meta, K.BTF_KIND_FUNC: _func_check_meta,
    K.BTF_KIND_FUNC_PROTO: _func_proto_check_meta, K.BTF_KIND_VAR: _var_check_meta,
    K.BTF_KIND_DATASEC: _datasec_check_meta, K.BTF_KIND_FLOAT: _float_check_meta,
    K.BTF_KIND_DECL_TAG: _decl_tag_check_meta, K.BTF_KIND_TYPE_TAG: _ref_check_meta,
    K.BTF_KIND_ENUM64: _enum64_check_meta,
}


# ---------------------------------------------------------------------------------------------
# FUNC and FUNC_PROTO checks

def _func_proto_check(env, t):
    btf = env.btf
    args = t.params
    if t.type:
        ret_id = t.type
        rt = btf.type_by_id(ret_id)
        if rt is None or is_resolve_source_only(rt):
            env.log_type(t, b"Invalid return type")
            return -errno.EINVAL
        if needs_resolve(rt) and not env.is_resolved(ret_id):
            err = _resolve(env, rt, ret_id)
            if err:
                return err
        if btf.type_id_size(ret_id) is None:
            env.log_type(t, b"Invalid return type")
            return -errno.EINVAL
    nr_args = len(args)
    if not nr_args:
        return 0
    if not args[nr_args - 1][1]:
        if args[nr_args - 1][0]:
            env.log_type(t, b"Invalid arg#%d" % nr_args)
            return -errno.EINVAL
        nr_args -= 1
    for i in range(nr_args):
        name_off, arg_id = args[i]
        at = btf.type_by_id(arg_id)
        if at is None or is_resolve_source_only(at):
            env.log_type(t, b"Invalid arg#%d" % (i + 1))
            return -errno.EINVAL
        if name_off and (not btf.name_offset_valid(name_off) or not env.name_valid_identifier(name_off)):
            env.log_type(t, b"Invalid arg#%d" % (i + 1))
            return -errno.EINVAL
        if needs_resolve(at) and not env.is_resolved(arg_id):
            err = _resolve(env, at, arg_id)
            if err:
                return err
        if btf.type_id_size(arg_id) is None:
            env.log_type(t, b"Invalid arg#%d" % (i + 1))
            return -errno.EINVAL
    return 0


def _func_check(env, t):
    btf = env.btf
    pt = btf.type_by_id(t.type)
    if pt is None or pt.kind != U.BTF_KIND_FUNC_PROTO:
        env.log_type(t, b"Invalid type_id")
        return -errno.EINVAL
    for i, (name_off, arg_type) in enumerate(pt.params):
        if not name_off and arg_type:
            env.log_type(t, b"Invalid arg#%d" % (i + 1))
            return -errno.EINVAL
    return 0


# ---------------------------------------------------------------------------------------------
# the passes

def _check_meta(env, t, meta_left):
    if meta_left < 12:
        env.vlog(b"[%d] meta_left:%d meta_needed:12" % (env.log_type_id, meta_left))
        env.fail(-errno.EINVAL)
    meta_left -= 12
    if t.info & ~BTF_INFO_MASK & U32:
        env.vlog(b"[%d] Invalid btf_info:%x" % (env.log_type_id, t.info))
        env.fail(-errno.EINVAL)
    if t.kind > U.BTF_KIND_MAX or t.kind == U.BTF_KIND_UNKN:
        env.vlog(b"[%d] Invalid kind:%d" % (env.log_type_id, t.kind))
        env.fail(-errno.EINVAL)
    if not env.btf.name_offset_valid(t.name_off):
        env.vlog(b"[%d] Invalid name_offset:%d" % (env.log_type_id, t.name_off))
        env.fail(-errno.EINVAL)
    return 12 + CHECK_META[t.kind](env, t, meta_left)


def _check_all_metas(env):
    btf = env.btf
    data = btf.data
    cur = btf.hdr.hdr_len + btf.hdr.type_off
    end = cur + btf.hdr.type_len
    env.log_type_id = btf.start_id if btf.base_btf is not None else 1
    limit = U.BTF_MAX_TYPE - btf.start_id
    while cur < end:
        if end - cur >= 12:
            t = BtfType(data, cur)
        else:  # fewer than 12 bytes left: only the length check looks at it
            t = None
            env.vlog(b"[%d] meta_left:%d meta_needed:12" % (env.log_type_id, end - cur))
            env.fail(-errno.EINVAL)
        size = _check_meta(env, t, end - cur)
        if len(btf.types) == limit:
            env.vlog(b"Exceeded max num of types")
        else:
            btf.types.append(t)
        cur += size
        env.log_type_id += 1


def _resolve_valid(env, t, type_id):
    btf = env.btf
    if not env.is_resolved(type_id):
        return False
    k = t.kind
    if is_struct(t) or k == U.BTF_KIND_DATASEC:
        return not btf.resolved_type_id(type_id) and not btf.resolved_type_size(type_id)
    if k in (U.BTF_KIND_DECL_TAG, U.BTF_KIND_FUNC):
        return bool(btf.resolved_type_id(type_id)) and not btf.resolved_type_size(type_id)
    if is_modifier(t) or k in (U.BTF_KIND_PTR, U.BTF_KIND_VAR):
        rt = btf.type_by_id(btf.resolved_type_id(type_id))
        return rt is not None and not is_modifier(rt) and rt.kind not in (U.BTF_KIND_VAR, U.BTF_KIND_DATASEC)
    if k == U.BTF_KIND_ARRAY:
        r = btf.type_id_size(t.array[0])
        return r is not None and not is_modifier(r[0]) and \
            (t.array[2] * r[2]) & U32 == btf.resolved_type_size(type_id)
    return False


def _resolve(env, t, type_id):
    """btf_resolve: walk from type_id until it and everything it needs are resolved."""
    saved = env.log_type_id
    err = 0
    env.resolve_mode = RESOLVE_TBD
    env.push(t, type_id)
    stack = env.stack
    while not err and stack:
        v = stack[-1]
        env.log_type_id = v[1]
        err = RESOLVE.get(v[0].kind, _df_resolve)(env, v)
    env.log_type_id = type_id
    if err == -errno.E2BIG:
        env.log_type(t, b"Exceeded max resolving depth:%d" % MAX_RESOLVE_DEPTH)
    elif err == -errno.EEXIST:
        env.log_type(t, b"Loop detected")
    if not err and not _resolve_valid(env, t, type_id):
        env.log_type(t, b"Invalid resolve state")
        err = -errno.EINVAL
    env.log_type_id = saved
    return err


def _check_all_types(env):
    btf = env.btf
    n = btf.nr_types
    btf.resolved_ids = [0] * n
    btf.resolved_sizes = [0] * n
    env.visit_states = bytearray(n)
    env.phase = CHECK_TYPE
    for i in range(0 if btf.base_btf is not None else 1, n):
        type_id = btf.start_id + i
        t = btf.type_by_id(type_id)
        env.log_type_id = type_id
        if needs_resolve(t) and not env.is_resolved(type_id):
            err = _resolve(env, t, type_id)
            if err:
                env.fail(err)
        if t.kind == U.BTF_KIND_FUNC_PROTO:
            err = _func_proto_check(env, t)
            if err:
                env.fail(err)


def _parse_type_sec(env):
    hdr = env.btf.hdr
    if hdr.type_off & 3:
        env.vlog(b"Unaligned type_off")
        env.fail(-errno.EINVAL)
    if env.btf.base_btf is None and not hdr.type_len:
        env.vlog(b"No type found")
        env.fail(-errno.EINVAL)
    _check_all_metas(env)
    _check_all_types(env)


def _parse_str_sec(env):
    btf = env.btf
    hdr = btf.hdr
    start = hdr.hdr_len + hdr.str_off
    end = start + hdr.str_len
    if end != btf.data_size:
        env.vlog(b"String section is not at the end")
        env.fail(-errno.EINVAL)
    btf.str_start = start
    if btf.base_btf is not None and not hdr.str_len:
        return
    if not hdr.str_len or hdr.str_len - 1 > U.BTF_MAX_NAME_OFFSET or btf.data[end - 1]:
        env.vlog(b"Invalid string section")
        env.fail(-errno.EINVAL)
    if btf.base_btf is None and btf.data[start]:
        env.vlog(b"Invalid string section")
        env.fail(-errno.EINVAL)


def _s32(x):
    x &= U32
    return x - (1 << 32) if x & 0x80000000 else x


def _check_sec_info(env, data_size):
    hdr = env.btf.hdr
    secs = [(hdr.type_off, hdr.type_len), (hdr.str_off, hdr.str_len)]
    a, b = secs
    cmp = _s32(a[0] - b[0]) or _s32(a[1] - b[1])
    if cmp >= 0:  # what the kernel's heapsort does with two elements
        secs = [b, a]
    total = 0
    expected_total = (data_size - hdr.hdr_len) & U32
    for off, ln in secs:
        if expected_total < off:
            env.vlog(b"Invalid section offset")
            env.fail(-errno.EINVAL)
        if total < off:
            env.vlog(b"Unsupported section found")
            env.fail(-errno.EINVAL)
        if total > off:
            env.vlog(b"Section overlap found")
            env.fail(-errno.EINVAL)
        if expected_total - total < ln:
            env.vlog(b"Total section length too long")
            env.fail(-errno.EINVAL)
        total += ln
    if expected_total != total:
        env.vlog(b"Unsupported section found")
        env.fail(-errno.EINVAL)


def _parse_hdr(env):
    btf = env.btf
    data = btf.data
    size = btf.data_size
    if size < 8:
        env.vlog(b"hdr_len not found")
        env.fail(-errno.EINVAL)
    hdr_len = int.from_bytes(data[4:8], "little")
    if size < hdr_len:
        env.vlog(b"btf_header not found")
        env.fail(-errno.EINVAL)
    if hdr_len > U.HDR_SIZE and any(data[U.HDR_SIZE:hdr_len]):
        env.vlog(b"Unsupported btf_header")
        env.fail(-errno.E2BIG)
    raw = data[:min(hdr_len, U.HDR_SIZE)]
    raw += bytes(U.HDR_SIZE - len(raw))
    h = Header(*U.HDR.unpack(raw))
    btf.hdr = h
    log = env.log
    if log.level and log.level != BPF_LOG_KERNEL:
        for line in (b"magic: 0x%x\n" % h.magic, b"version: %d\n" % h.version, b"flags: 0x%x\n" % h.flags,
                     b"hdr_len: %d\n" % h.hdr_len, b"type_off: %d\n" % h.type_off, b"type_len: %d\n" % h.type_len,
                     b"str_off: %d\n" % h.str_off, b"str_len: %d\n" % h.str_len,
                     b"btf_total_size: %d\n" % size):
            log.vlog(line)
    if h.magic != U.BTF_MAGIC:
        env.vlog(b"Invalid magic")
        env.fail(-errno.EINVAL)
    if h.version != U.BTF_VERSION:
        env.vlog(b"Unsupported version")
        env.fail(-ENOTSUPP)
    if h.flags:
        env.vlog(b"Unsupported flags")
        env.fail(-ENOTSUPP)
    if btf.base_btf is None and size == h.hdr_len:
        env.vlog(b"No data")
        env.fail(-errno.EINVAL)
    _check_sec_info(env, size)


def _check_type_tags(env, btf, start_id):
    good_id = start_id - 1
    n = btf.nr_types_total()
    for i in range(start_id, n):
        t = btf.type_by_id(i)
        if t is None:
            return -errno.EINVAL
        if not is_modifier(t):
            continue
        chain_limit = 32
        cur_id = i
        in_tags = t.kind == U.BTF_KIND_TYPE_TAG
        while is_modifier(t):
            if not chain_limit:
                env.vlog(b"Max chain length or cycle detected")
                return -errno.ELOOP
            chain_limit -= 1
            if t.kind == U.BTF_KIND_TYPE_TAG:
                if not in_tags:
                    env.vlog(b"Type tags don't precede modifiers")
                    return -errno.EINVAL
            elif in_tags:
                in_tags = False
            if cur_id <= good_id:
                break
            cur_id = t.type
            t = btf.type_by_id(cur_id)
            if t is None:
                return -errno.EINVAL
        good_id = i
    return 0


class ParseResult:
    """What a BTF_BTF_LOAD-style parse produced: the Btf (or None), errno (0 on success), the log."""

    __slots__ = ("btf", "errno", "log", "log_true_size", "detail")

    def __init__(self, btf, err, log, true_size, detail=None):
        self.btf = btf
        self.errno = err
        self.log = log
        self.log_true_size = true_size
        self.detail = detail


def btf_parse(data, log=None, btf_size=None, base=None, vmlinux="default", write_true_size=None, _explain=True,
              profile=None):
    """btf_parse(): validate a BTF blob as BPF_BTF_LOAD does; return the Btf or raise OSError.

    ``data``: the blob (bytes), or a callable returning it that may raise
    OSError(EFAULT) (the copy from user memory, done after the size and log
    checks as in the kernel). ``btf_size``: attr.btf_size (default len(data)).
    ``log``: a :class:`~bpfemu.btf.log.VerifierLog` (``VerifierLog.init`` gives
    EINVAL for bad log attrs; build it before calling, as the kernel checks the
    size first, so pass ``log`` as ``(level, ubuf, size)`` to keep that order).
    ``base``: the Btf this one is split from. ``vmlinux``: the kernel's Btf (or
    a callable returning it; by default :func:`~bpfemu.btf.vmlinux.vmlinux_btf`,
    loaded only if a kptr needs it), used for the kptr checks of special fields.
    ``write_true_size(n)``: stores log_true_size back into attr (may raise
    OSError(EFAULT)); None when attr is too short to hold it. ``profile``: the kernel version's
    :class:`~bpfemu.profiles.profile.Profile` (None: the newest's rules).

    Errors: E2BIG (btf_size > 16 MiB, or nonzero header bytes past 24),
    EINVAL (bad log attrs, or invalid BTF), ENOTSUPP (524: version, flags,
    int encoding), EFAULT, ENOSPC (the log did not fit), ELOOP (a modifier
    chain longer than 32), and those of the special-field checks.
    """
    if btf_size is None:
        btf_size = len(data) if not callable(data) else 0
    if btf_size > U.BTF_MAX_SIZE:
        raise bpf_error(errno.E2BIG, "btf_size %d above %d" % (btf_size, U.BTF_MAX_SIZE))
    if log is None:
        log = VerifierLog()
    elif isinstance(log, tuple):  # the kernel version's log (profile.verifier_log)
        log = (HeadLog if profile is not None and profile.verifier_log == "head" else VerifierLog).init(*log)
    err = 0
    btf = None
    env = None
    raw = None
    metas_failed = False
    try:
        raw = data() if callable(data) else data
        raw = bytes(raw[:btf_size])
        if len(raw) < btf_size:
            raise bpf_error(errno.EFAULT, "btf shorter than btf_size")
        btf = Btf(raw, base=base)
        env = Env(btf, log)
        if profile is not None:
            env.tag_kflag = profile.btf_tag_kflag
            env.printable_sections = profile.btf_section_names == "printable"
        _parse_hdr(env)
        _parse_str_sec(env)
        _parse_type_sec(env)
        err = _check_type_tags(env, btf, 1)
        if not err and (profile is None or profile.btf_struct_metas):
            if vmlinux == "default":
                vmlinux = vmlinux_btf
            err = parse_struct_metas(btf, vmlinux)
            if err:
                metas_failed = True
    except _Fail as f:
        err = f.err
    except OSError as e:
        err = -e.errno
    ferr, true_size = log.finalize()
    if getattr(log, "enospc_when_full", False) and not err and log.level and log.full():
        ferr = errno.ENOSPC  # (6.1: only a load that succeeded otherwise)
    if write_true_size is not None:
        try:
            write_true_size(true_size)
        except OSError:
            ferr = errno.EFAULT
    log.true_size = true_size
    if ferr:
        err = -ferr
    if err:
        if metas_failed and not ferr:
            detail = "the special fields (bpf_spin_lock, kptrs, list heads...) of a struct are invalid"
        else:
            detail = _cause(-err, ferr, raw, btf_size, base) if _explain else None
        raise bpf_error(-err, detail)
    return btf


def _cause(err, ferr, raw, btf_size, base):
    """A one-line reason for the emulator's error: the log line the kernel would end with."""
    if ferr == errno.ENOSPC:
        return "the verifier log did not fit in log_size"
    if ferr == errno.EFAULT:
        return "writing the verifier log or log_true_size faulted"
    if raw is None:
        return "reading the BTF blob faulted"
    buf = BytesBuffer(1 << 20)
    try:
        btf_parse(raw, VerifierLog(1, buf, 1 << 20), btf_size, base, vmlinux=None, _explain=False)
    except OSError:
        pass
    last = buf.text().rstrip(b"\n").rsplit(b"\n", 1)[-1].decode("latin-1")
    return "BTF rejected: %s" % last if last else "BTF rejected (%s)" % errno.errorcode.get(err, err)
