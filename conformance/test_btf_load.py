"""BPF_BTF_LOAD on both backends: one case per check of the kernel's BTF verifier, and the log.

Each case is a blob (written with bpfemu.btf.Builder) with what the 6.18 kernel
answers: the errno and the last line of its log at level 1 (the cause, or the
last type it checked when it accepts the blob). The log tests pin down
log_level/log_buf/log_size validation, the fixed and the rotating log,
ENOSPC, and log_true_size. The same checks run through ``proc.bpf()`` on the
emulator and on the host (a real child process, whose RPC copies the blob and
the log buffer as the command table declares them).
"""
import ctypes
import errno

import pytest

from bpfemu.btf import Builder
from bpfemu.btf import uapi as U
from bpfemu import uapi
from bpfemu.testing.support import attr_has
from .corpus.btf import btf_load, log_cause, log_text


def true_size(profile, n):
    """What attr.btf_log_true_size holds after a load whose whole log needs ``n`` bytes: ``n`` where the
    version has the field (6.4+), else the 0 the caller left (the field is past BTF_LOAD's last one)."""
    return n if attr_has(profile, uapi.BPF_BTF_LOAD, "btf_log_true_size") else 0

ENOTSUPP = 524


def B():
    return Builder().int("int", 4, signed=True)


def _strings_only(strings, type_off):
    hdr = U.HDR.pack(U.BTF_MAGIC, 1, 0, 24, type_off, 0, 0, len(strings))
    return hdr + strings


def _kflag(b):
    b.types[-1].kflag = 1
    return b


def _chain(n):
    b = B()
    for i in range(n):
        b.const(b.last + 2 if i < n - 1 else 1)
    return b.blob()


def _ptr_chain(n):
    b = B()
    for i in range(n):
        b.ptr(b.last + 2 if i < n - 1 else 1)
    return b.blob()


# name: (errno, last log line, blob)
CASES = {
    # header
    "empty": (22, 'hdr_len not found',
        lambda: b""),
    "short_header": (22, 'hdr_len not found',
        lambda: B().blob()[:7]),
    "hdr_len_past_end": (22, 'btf_header not found',
        lambda: B().blob(hdr_len=200)),
    "hdr_tail_nonzero": (7, 'Unsupported btf_header',
        lambda: B().blob(hdr_len=28, hdr_tail=b"\x01\0\0\0")),
    "hdr_tail_zero": (0, '[1] INT int size=4 bits_offset=0 nr_bits=32 encoding=SIGNED',
        lambda: B().blob(hdr_len=28, hdr_tail=bytes(4))),
    "hdr_len_short": (22, 'Unsupported section found',
        lambda: B().blob(hdr_len=16)),
    "bad_magic": (22, 'Invalid magic',
        lambda: B().blob(magic=0x9FEB)),
    "bad_version": (524, 'Unsupported version',
        lambda: B().blob(version=2)),
    "bad_flags": (524, 'Unsupported flags',
        lambda: B().blob(flags=1)),
    "no_data": (22, 'No data',
        lambda: B().blob(types=b"", strings=b"")),
    "section_gap": (22, 'Unsupported section found',
        lambda: B().blob(type_off=4, types=bytes(4) + B().type_section(), type_len=16,
                                    str_off=20)),
    "section_overlap": (22, 'Section overlap found',
        lambda: B().blob(str_off=8)),
    "section_offset_past_end": (22, 'Invalid section offset',
        lambda: B().blob(str_off=1000)),
    "section_too_long": (22, 'Total section length too long',
        lambda: B().blob(str_len=1000)),
    "junk_after_sections": (22, 'Unsupported section found',
        lambda: B().blob() + b"\0\0\0\0"),
    "unaligned_type_off": (22, 'Unaligned type_off',
        lambda: _strings_only(b"\0abcde\0", 7)),
    "no_types": (22, 'No type found',
        lambda: B().blob(types=b"")),
    # strings
    "str_not_at_end": (22, 'Unsupported section found',
        lambda: B().blob(str_len=len(B().string_section()) - 1)),
    "str_no_final_nul": (22, 'Invalid string section',
        lambda: B().blob(strings=b"\0int")),
    "str_first_not_empty": (22, 'Invalid string section',
        lambda: B().blob(strings=b"xint\0")),
    "str_empty": (22, 'Invalid string section',
        lambda: B().blob(strings=b"")),
    # type records
    "meta_short": (22, '[1] meta_left:10 meta_needed:12',
        lambda: B().blob(types=B().type_section()[:10])),
    "bad_info_bits": (22, '[1] Invalid btf_info:1010000',
        lambda: Builder().raw("", U.BTF_INFO_ENC(U.BTF_KIND_INT, 0, 0) | 0x10000, 4, 32).blob()),
    "kind_zero": (22, '[1] Invalid kind:0',
        lambda: Builder().raw("", 0, 0).blob()),
    "kind_too_big": (22, '[1] Invalid kind:20',
        lambda: Builder().raw("", 20 << 24, 0).blob()),
    "name_off_out_of_range": (22, '[1] Invalid name_offset:100',
        lambda: Builder().raw(100, U.BTF_INFO_ENC(U.BTF_KIND_INT, 0, 0), 4, 32).blob()),
    "int_meta_short": (22, '[1] INT int meta_left:0 meta_needed:4',
        lambda: B().blob(types=B().type_section()[:12])),
    "int_vlen": (22, '[1] INT int size=4 bits_offset=0 nr_bits=32 encoding=(none) vlen != 0',
        lambda: Builder().raw("int", U.BTF_INFO_ENC(U.BTF_KIND_INT, 0, 1), 4, 32).blob()),
    "int_kflag": (22, '[1] INT int size=4 bits_offset=0 nr_bits=32 encoding=(none) Invalid btf_info kind_flag',
        lambda: Builder().raw("int", U.BTF_INFO_ENC(U.BTF_KIND_INT, 1, 0), 4, 32).blob()),
    "int_data_reserved_bits": (22, '[1] INT int Invalid int_data:10000020',
        lambda: Builder().raw("int", U.BTF_INFO_ENC(U.BTF_KIND_INT, 0, 0), 4,
                                                    0x10000020).blob()),
    "int_bits_over_128": (22, '[1] INT x size=16 bits_offset=9 nr_bits=120 encoding=(none) nr_bits exceeds 128',
        lambda: Builder().int("x", 16, bits=120, offset=9).blob()),
    "int_bits_over_size": (22, '[1] INT x size=4 bits_offset=0 nr_bits=33 encoding=(none) nr_bits exceeds type_size',
        lambda: Builder().int("x", 4, bits=33).blob()),
    "int_bad_encoding": (524, '[1] INT x size=4 bits_offset=0 nr_bits=32 encoding=UNKN Unsupported encoding',
        lambda: Builder().int("x", 4, encoding=3).blob()),
    "int_128": (0, '[1] INT __int128 size=16 bits_offset=0 nr_bits=128 encoding=SIGNED',
        lambda: Builder().int("__int128", 16, signed=True).blob()),
    "int_bitfield_int": (0, '[1] INT x size=4 bits_offset=3 nr_bits=5 encoding=(none)',
        lambda: Builder().int("x", 4, bits=5, offset=3).blob()),
    "ptr_named": (22, '[2] PTR p type_id=1 Invalid name',
        lambda: B().raw("p", U.BTF_INFO_ENC(U.BTF_KIND_PTR, 0, 0), 1).blob()),
    "ptr_type_id_too_big": (22, '[2] PTR (anon) type_id=1048576 Invalid type_id',
        lambda: B().ptr(U.BTF_MAX_TYPE + 1).blob()),
    "ptr_to_missing": (22, '[2] PTR (anon) type_id=5 Invalid type_id',
        lambda: B().ptr(5).blob()),
    "ptr_to_void": (0, '[2] PTR (anon) type_id=0',
        lambda: B().ptr(0).blob()),
    "ptr_loop": (17, '[2] PTR (anon) type_id=3 Loop detected',
        lambda: B().ptr(3).ptr(2).blob()),
    "ptr_to_self_via_const": (17, '[2] CONST (anon) type_id=3 Loop detected',
        lambda: B().const(3).ptr(2).blob()),
    "typedef_unnamed": (22, '[2] TYPEDEF (anon) type_id=1 Invalid name',
        lambda: B().typedef("", 1).blob()),
    "typedef_bad_name": (22, '[2] TYPEDEF a b type_id=1 Invalid name',
        lambda: B().typedef("a b", 1).blob()),
    "typedef_void": (0, '[2] TYPEDEF v type_id=0',
        lambda: B().typedef("v", 0).blob()),
    "const_named": (22, '[2] CONST c type_id=1 Invalid name',
        lambda: B().raw("c", U.BTF_INFO_ENC(U.BTF_KIND_CONST, 0, 0), 1).blob()),
    "const_to_var": (22, '[3] CONST (anon) type_id=2 Invalid type_id',
        lambda: B().var("v", 1).const(2).blob()),
    "volatile_loop": (17, '[2] VOLATILE (anon) type_id=3 Loop detected',
        lambda: B().volatile(3).restrict(2).blob()),
    "type_tag_unnamed": (22, '[2] TYPE_TAG (anon) type_id=1 Invalid name',
        lambda: B().type_tag("", 1).blob()),
    "type_tag_kflag": (0, '[2] TYPE_TAG attr type_id=1',
        lambda: _kflag(B().type_tag("attr", 1)).blob()),
    "type_tag_after_modifier": (22, "Type tags don't precede modifiers",
        lambda: B().typedef("t", 3).const(4).type_tag("tag", 1).blob()),
    "modifier_chain_33": (7, '[2] CONST (anon) type_id=3 Exceeded max resolving depth:32',
        lambda: _chain(33)),
    "modifier_chain_31": (0, '[32] CONST (anon) type_id=1',
        lambda: _chain(31)),
    "resolve_depth_33": (7, '[2] PTR (anon) type_id=3 Exceeded max resolving depth:32',
        lambda: _ptr_chain(34)),
    "array_named": (22, '[2] ARRAY a type_id=1 index_type_id=1 nr_elems=2 Invalid name',
        lambda: B().raw("a", U.BTF_INFO_ENC(U.BTF_KIND_ARRAY, 0, 0), 0, 1, 1, 2).blob()),
    "array_size_set": (22, '[2] ARRAY (anon) type_id=1 index_type_id=1 nr_elems=2 size != 0',
        lambda: B().raw("", U.BTF_INFO_ENC(U.BTF_KIND_ARRAY, 0, 0), 4, 1, 1, 2).blob()),
    "array_elem_void": (22, '[2] ARRAY (anon) type_id=0 index_type_id=1 nr_elems=2 Invalid elem',
        lambda: B().array(0, 2, index=1).blob()),
    "array_index_void": (22, '[2] ARRAY (anon) type_id=1 index_type_id=0 nr_elems=2 Invalid index',
        lambda: B().array(1, 2, index=0).blob()),
    "array_index_not_int": (22, '[3] ARRAY (anon) type_id=1 index_type_id=2 nr_elems=2 Invalid index',
        lambda: B().ptr(1).array(1, 2, index=2).blob()),
    "array_index_bitfield_int": (22, '[3] ARRAY (anon) type_id=1 index_type_id=2 nr_elems=2 Invalid index',
        lambda: B().int("b", 4, bits=3).array(1, 2, index=2).blob()),
    "array_of_bitfield_int": (22, '[3] ARRAY (anon) type_id=2 index_type_id=1 nr_elems=2 Invalid array of int',
        lambda: B().int("b", 4, bits=3).array(2, 2, index=1).blob()),
    "array_overflow": (22, '[2] ARRAY (anon) type_id=1 index_type_id=1 nr_elems=1073741824 Array size overflows U32_MAX',
        lambda: B().array(1, 0x40000000, index=1).blob()),
    "array_of_func_proto": (22, '[3] ARRAY (anon) type_id=2 index_type_id=1 nr_elems=2 Invalid elem',
        lambda: B().func_proto(1).array(2, 2, index=1).blob()),
    "struct_ok": (0, '\tb type_id=1 bits_offset=32',
        lambda: B().struct("s", [("a", "int"), ("b", "int")]).blob()),
    "struct_bad_name": (22, '[2] STRUCT 1s size=4 vlen=1 Invalid name',
        lambda: B().struct("1s", [("a", "int")]).blob()),
    "struct_member_bad_name": (22, '\ta b type_id=1 bits_offset=0 Invalid name',
        lambda: B().struct("s", [("a b", "int")]).blob()),
    "struct_member_name_off_invalid": (22, '\t(invalid-name-offset) type_id=1 bits_offset=0 Invalid member name_offset:1000',
        lambda: B().struct("s", [(1000, "int")]).blob()),
    "struct_member_void": (22, '\ta type_id=0 bits_offset=0 Invalid type_id',
        lambda: B().struct("s", [("a", 0, 0)], size=4).blob()),
    "struct_member_offsets_decrease": (22, '\tb type_id=1 bits_offset=0 Invalid member bits_offset',
        lambda: B().struct("s", [("a", "int", 32), ("b", "int", 0)], size=8).blob()),
    "struct_member_past_size": (22, '\ta type_id=1 bits_offset=64 Member bits_offset exceeds its struct size',
        lambda: B().struct("s", [("a", "int", 64)], size=4).blob()),
    "struct_member_exceeds": (22, '\ta type_id=1 bits_offset=8 Member exceeds struct_size',
        lambda: B().struct("s", [("a", "int", 8)], size=4).blob()),
    "struct_member_unaligned_ptr": (22, '\tp type_id=2 bits_offset=4 Member is not byte aligned',
        lambda: B().ptr(1).struct("s", [("p", 2, 4)], size=16).blob()),
    "struct_vlen_short": (22, '[2] STRUCT (anon) meta_left:12 meta_needed:24',
        lambda: B().raw("", U.BTF_INFO_ENC(U.BTF_KIND_STRUCT, 0, 2), 8, 0, 1, 0).blob()),
    "struct_member_func_proto": (22, '\tf type_id=2 bits_offset=0 Invalid member',
        lambda: B().func_proto(1).struct("s", [("f", 2, 0)], size=8).blob()),
    "struct_loop": (17, '[2] STRUCT s size=8 vlen=2 Loop detected',
        lambda: B().struct("s", [("a", "int"), ("b", "s", 32)], size=8).blob()),
    "struct_self_ptr": (0, '\tn type_id=2 bits_offset=64',
        lambda: B().ptr(3).struct("s", [("a", "int"), ("n", 2)]).blob()),
    "union_offset": (22, '\tb type_id=1 bits_offset=32 Invalid member bits_offset',
        lambda: B().union("u", [("a", "int", 0), ("b", "int", 32)], size=8).blob()),
    "struct_kflag_bitfields": (0, '\tb type_id=1 bitfield_size=29 bits_offset=3',
        lambda: B().struct("s", [("a", "int", 0, 3), ("b", "int", 3, 29)], size=4).blob()),
    "struct_kflag_bitfield_too_big": (22, '\ta type_id=1 bitfield_size=33 bits_offset=0 Invalid member bitfield_size',
        lambda: B().struct("s", [("a", "int", 0, 33)], size=8).blob()),
    "struct_kflag_member_unaligned": (22, '\ta type_id=1 bitfield_size=0 bits_offset=3 Invalid member offset',
        lambda: B().struct("s", [("a", "int", 3)], size=8, kflag=True).blob()),
    "struct_kflag_ptr_bitfield": (22, '\tp type_id=2 bitfield_size=8 bits_offset=0 Invalid member bitfield_size',
        lambda: B().ptr(1).struct("s", [("p", 2, 0, 8)], size=8).blob()),
    "struct_kflag_bitfield_base_not_regular": (22, '\ta type_id=2 bitfield_size=3 bits_offset=0 Invalid member base type',
        lambda: B().int("b", 4, bits=5).struct(
        "s", [("a", 2, 0, 3)], size=4).blob()),
    "struct_int_offset_member": (22, '\ta type_id=2 bits_offset=8 Member exceeds struct_size',
        lambda: B().int("b", 4, bits=8, offset=24).struct("s", [("a", 2, 8)], size=4).blob()),
    "struct_enum_member_kflag": (22, '\te type_id=2 bitfield_size=40 bits_offset=0 Invalid member bitfield_size',
        lambda: B().enum("e", ["A"]).struct("s", [("e", 2, 0, 40)], size=8).blob()),
    "struct_float_misaligned": (22, '\tf type_id=2 bits_offset=32 Member is not properly aligned',
        lambda: B().float("f", 8).struct("s", [("f", 2, 32)], size=16).blob()),
    "struct_fwd_member": (22, '\tf type_id=2 bits_offset=0 Invalid member',
        lambda: B().fwd("f").struct("s", [("f", 2, 0)], size=8).blob()),
    "enum_ok": (0, '\tB val=7',
        lambda: B().enum("e", [("A", -1), ("B", 7)], signed=True).blob()),
    "enum_size_3": (22, '[2] ENUM e size=3 vlen=1 Unexpected size',
        lambda: B().enum("e", ["A"], size=3).blob()),
    "enum_size_16": (22, '[2] ENUM e size=16 vlen=1 Unexpected size',
        lambda: B().enum("e", ["A"], size=16).blob()),
    "enum_unnamed_value": (22, '[2] ENUM e size=4 vlen=1 Invalid name',
        lambda: B().enum("e", [("", 0)]).blob()),
    "enum_value_name_off_invalid": (22, '\tInvalid name_offset:999',
        lambda: B().enum("e", [(999, 0)]).blob()),
    "enum64_ok": (0, '\tB val=1099511627776',
        lambda: B().enum64("e", [("A", -1), ("B", 1 << 40)], signed=True).blob()),
    "enum64_unsigned": (0, '\tA val=18446744073709551615',
        lambda: B().enum64("e", [("A", -1)]).blob()),
    "fwd_ok": (0, '[2] FWD f union',
        lambda: B().fwd("f", union=True).blob()),
    "fwd_unnamed": (22, '[2] FWD (anon) struct Invalid name',
        lambda: B().fwd("").blob()),
    "fwd_vlen": (22, '[2] FWD f struct vlen != 0',
        lambda: B().raw("f", U.BTF_INFO_ENC(U.BTF_KIND_FWD, 0, 1), 0).blob()),
    "fwd_type": (22, '[2] FWD f struct type != 0',
        lambda: B().raw("f", U.BTF_INFO_ENC(U.BTF_KIND_FWD, 0, 0), 1).blob()),
    "func_ok": (0, '[3] FUNC f type_id=2',
        lambda: B().func_proto("int", [("a", "int")]).func("f", 2).blob()),
    "func_unnamed": (22, '[3] FUNC (anon) type_id=2 Invalid name',
        lambda: B().func_proto("int").func("", 2).blob()),
    "func_linkage_extern": (22, '[3] FUNC f type_id=2 Invalid func linkage',
        lambda: B().func_proto("int").func("f", 2, linkage=2).blob()),
    "func_not_proto": (22, '[2] FUNC f type_id=1 Invalid type_id',
        lambda: B().func("f", 1).blob()),
    "func_unnamed_arg": (22, '[3] FUNC f type_id=2 Invalid arg#1',
        lambda: B().func_proto("int", [1]).func("f", 2).blob()),
    "func_proto_named": (22, '[2] FUNC_PROTO p return=1 args=(void) Invalid name',
        lambda: B().raw("p", U.BTF_INFO_ENC(U.BTF_KIND_FUNC_PROTO, 0, 0), 1).blob()),
    "func_proto_vararg": (0, '[2] FUNC_PROTO (anon) return=1 args=(1 a, vararg)',
        lambda: B().func_proto("int", [("a", "int"), ...]).blob()),
    "func_proto_named_vararg": (22, '[2] FUNC_PROTO (anon) return=1 args=(1 a, vararg) Invalid arg#2',
        lambda: B().func_proto("int", [("a", "int"), ("v", 0)]).blob()),
    "func_proto_bad_return": (22, '[3] FUNC_PROTO (anon) return=2 args=(void) Invalid return type',
        lambda: B().var("v", 1).func_proto(2).blob()),
    "func_proto_arg_missing": (22, '[2] FUNC_PROTO (anon) return=1 args=(9 a) Invalid arg#1',
        lambda: B().func_proto("int", [("a", 9)]).blob()),
    "func_proto_arg_void_mid": (22, '[2] FUNC_PROTO (anon) return=1 args=(0 a, 1 b) Invalid arg#1',
        lambda: B().func_proto("int", [("a", 0), ("b", 1)]).blob()),
    "func_proto_return_func": (22, '[4] FUNC_PROTO (anon) return=3 args=(void) Invalid return type',
        lambda: B().func_proto(1).func("f", 2).func_proto(3).blob()),
    "var_ok": (0, '[2] VAR v type_id=1 linkage=1',
        lambda: B().var("v", 1).blob()),
    "var_extern": (22, '[2] VAR v type_id=1 linkage=2 Linkage not supported',
        lambda: B().var("v", 1, linkage=2).blob()),
    "var_void": (22, '[2] VAR v type_id=0 linkage=1 Invalid type_id',
        lambda: B().var("v", 0).blob()),
    "var_of_fwd": (22, '[3] VAR v type_id=2 linkage=1 Invalid type_id',
        lambda: B().fwd("f").var("v", 2).blob()),
    "datasec_ok": (0, '\t type_id=2 offset=0 size=4',
        lambda: B().var("v", 1).datasec(".data", ["v"]).blob()),
    "datasec_unnamed": (22, '[3] DATASEC (anon) size=4 vlen=1 Invalid name',
        lambda: B().var("v", 1).datasec("", ["v"]).blob()),
    "datasec_size_zero": (22, '[3] DATASEC .data size=0 vlen=1 size == 0',
        lambda: B().var("v", 1).datasec(".data", [("v", 0, 4)], size=0).blob()),
    "datasec_overlap": (22, '\t type_id=3 offset=2 size=4 Invalid offset',
        lambda: B().var("v", 1).var("w", 1).datasec(".d", [("v", 0, 4), ("w", 2, 4)], size=8).blob()),
    "datasec_past_end": (22, '\t type_id=2 offset=2 size=4 Invalid offset+size',
        lambda: B().var("v", 1).datasec(".d", [("v", 2, 4)], size=4).blob()),
    "datasec_not_var": (22, '\t type_id=1 offset=0 size=4 Not a VAR kind member',
        lambda: B().datasec(".d", [(1, 0, 4)], size=4).blob()),
    "datasec_var_too_big": (22, '\t type_id=2 offset=0 size=2 Invalid size',
        lambda: B().var("v", 1).datasec(".d", [("v", 0, 2)], size=4).blob()),
    "datasec_nonprintable_name": (22, '[3] DATASEC \x01x size=4 vlen=1 Invalid name',
        lambda: B().var("v", 1).datasec(b"\x01x", ["v"]).blob()),
    "float_ok": (0, '[2] FLOAT double size=8',
        lambda: B().float("double", 8).blob()),
    "float_size_3": (22, '[2] FLOAT f size=3 Invalid type_size',
        lambda: B().float("f", 3).blob()),
    "decl_tag_ok": (0, '[3] DECL_TAG t type=2 component_idx=0',
        lambda: B().struct("s", [("a", "int")]).decl_tag("t", 2, 0).blob()),
    "decl_tag_unnamed": (22, '[3] DECL_TAG (anon) type=2 component_idx=-1 Invalid value',
        lambda: B().struct("s", [("a", "int")]).decl_tag("", 2).blob()),
    "decl_tag_kflag": (0, '[3] DECL_TAG t type=2 component_idx=-1',
        lambda: _kflag(
        B().struct("s", [("a", "int")]).decl_tag("t", 2)).blob()),
    "decl_tag_bad_idx": (22, '[3] DECL_TAG t type=2 component_idx=1 Invalid component_idx',
        lambda: B().struct("s", [("a", "int")]).decl_tag("t", 2, 1).blob()),
    "decl_tag_idx_below_minus_one": (22, '[3] DECL_TAG t type=2 component_idx=-2 Invalid component_idx',
        lambda: B().struct("s", [("a", "int")]).decl_tag("t", 2, -2).blob()),
    "decl_tag_on_int": (22, '[2] DECL_TAG t type=1 component_idx=-1 Invalid type_id',
        lambda: B().decl_tag("t", 1).blob()),
    "decl_tag_on_var_idx": (22, '[3] DECL_TAG t type=2 component_idx=0 Invalid component_idx',
        lambda: B().var("v", 1).decl_tag("t", 2, 0).blob()),
    "decl_tag_on_func_arg": (0, '[4] DECL_TAG t type=3 component_idx=0',
        lambda: B().func_proto("int", [("a", "int")]).func("f", 2).decl_tag("t", 3, 0).blob()),
    # special fields (struct metas)
    "two_spin_locks": (7, '\tb type_id=2 bits_offset=32',
        lambda: B().struct("bpf_spin_lock", [("v", "int")]).struct(
        "v", [("a", "bpf_spin_lock"), ("b", "bpf_spin_lock")]).blob()),
    "kptr_to_kernel_type_without_dtor": (2, '\tp type_id=4 bits_offset=0',
        lambda: B().struct("file", [("x", "int")]).type_tag("kptr", 2).ptr(3).struct(
        "v", [("p", 4)]).blob()),
    "kptr_to_task_struct": (0, '\tp type_id=4 bits_offset=0',
        lambda: B().struct("task_struct", [("x", "int")]).type_tag("kptr", 2).ptr(3).struct(
        "v", [("p", 4)]).blob()),
    "list_head_without_lock": (22, '\th type_id=3 bits_offset=0',
        lambda: B().int("u64", 8).struct("bpf_list_head", [("a", "u64"), ("b", "u64")]).struct(
        "v", [("h", "bpf_list_head")]).blob()),
}


def _kernel_btf_lacks(proc, struct_name):
    """True when the emulated task's kernel BTF has no struct of that name (the host's always has its own)."""
    kernel = getattr(proc, "kernel", None)
    if kernel is None:
        return False
    from bpfemu.btf.vmlinux import vmlinux_btf
    return vmlinux_btf().find_by_name_kind(struct_name, U.BTF_KIND_STRUCT) < 0


KFLAG_TAGS = {"decl_tag_kflag", "type_tag_kflag"}  # kind_flag on a tag: accepted since 6.14 (profile.btf_tag_kflag)
# refused for their structs' special fields, which BTF_LOAD looks at since 6.2 (profile.btf_struct_metas)
STRUCT_METAS = {"two_spin_locks", "kptr_to_kernel_type_without_dtor", "list_head_without_lock"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_verdict_and_cause(proc, profile, name):
    err, cause, blob = CASES[name]
    if name in KFLAG_TAGS and not profile.btf_tag_kflag:
        err, cause = errno.EINVAL, cause + " Invalid btf_info kind_flag"
    if name in STRUCT_METAS and not profile.btf_struct_metas:
        err = 0  # (the log is the same: the special fields add no line)
    if name == "kptr_to_kernel_type_without_dtor" and _kernel_btf_lacks(proc, b"file"):
        pytest.skip("the kernel BTF has no struct file (bpfemu's built one, off Linux): a kptr to it is a "
                    "program type there")
    got, raw, got_size = btf_load(proc, blob())
    assert (got, log_cause(raw).decode("latin-1")) == (err, cause)
    assert got_size == true_size(profile, len(log_text(raw)) + 1)
    assert btf_load(proc, blob(), log_level=0, log_size=0)[0] == err


GOOD = B().struct("s", [("a", "int"), ("b", "int")]).blob()


@pytest.mark.parametrize("level,size,buf,err", [
    (0, 100, True, errno.EINVAL),  # a buffer without a level
    (1, 0, True, errno.EINVAL),  # a level and a buffer of size 0
    (1, 100, False, errno.EINVAL),  # a size without a buffer
    (16, 100, True, errno.EINVAL),  # BPF_LOG_KERNEL is not for userspace
    (32, 100, True, errno.EINVAL),  # unknown level bits
    (1, (0xFFFFFFFF >> 2) + 1, True, errno.EINVAL),  # size above UINT_MAX >> 2
    (1, 0, False, 0),  # a level without a buffer: nothing to write, no error
    (4, 65535, True, 0),  # BPF_LOG_STATS alone is a level
    (7, 65535, True, 0),
])
def test_log_attr_checks(proc, profile, level, size, buf, err):
    if profile.verifier_log == "head" and (level, size, buf) == (1, 0, False):
        err = errno.EINVAL  # (6.1: a level needs a buffer of 128 bytes or more)
    assert btf_load(proc, GOOD, log_level=level, log_size=size, log_buf=buf)[0] == err


def test_log_attr_checked_after_size(proc):
    """btf_size above 16 MiB is E2BIG before the log attrs are looked at."""
    got, _raw, _t = btf_load(proc, GOOD, log_level=32, log_size=1, btf_size=U.BTF_MAX_SIZE + 1)
    assert got == errno.E2BIG


def test_full_log_and_true_size(proc, profile):
    err, raw, got_size = btf_load(proc, GOOD)
    text = log_text(raw)
    assert err == 0
    assert text.startswith(b"magic: 0xeb9f\nversion: 1\nflags: 0x0\nhdr_len: 24\n")
    assert b"[2] STRUCT s size=8 vlen=2\n\ta type_id=1 bits_offset=0\n\tb type_id=1 bits_offset=32\n" in text
    assert got_size == true_size(profile, len(text) + 1)


def rotating(profile):
    if profile.verifier_log != "rotating":
        pytest.skip("%s's log keeps the head (profile.verifier_log = %s): no rotation, no BPF_LOG_FIXED"
                    % (profile.version, profile.verifier_log))


def test_rotating_log_keeps_the_tail(proc, profile):
    rotating(profile)
    full = log_text(btf_load(proc, GOOD)[1])
    err, raw, got_size = btf_load(proc, GOOD, log_level=1, log_size=40)
    assert err == errno.ENOSPC  # a load that succeeds still fails when its log did not fit
    assert log_text(raw) == full[-39:]
    assert raw[39:40] == b"\0"
    assert got_size == true_size(profile, len(full) + 1)


def test_fixed_log_keeps_the_head(proc, profile):
    rotating(profile)
    full = log_text(btf_load(proc, GOOD)[1])
    err, raw, got_size = btf_load(proc, GOOD, log_level=1 | 8, log_size=40)
    assert err == errno.ENOSPC
    assert log_text(raw) == full[:39]
    assert got_size == true_size(profile, len(full) + 1)


def test_log_exactly_fits(proc, profile):
    rotating(profile)
    full = log_text(btf_load(proc, GOOD)[1])
    for flags in (1, 9):
        err, raw, got_size = btf_load(proc, GOOD, log_level=flags, log_size=len(full) + 1)
        assert (err, log_text(raw), got_size) == (0, full, true_size(profile, len(full) + 1))
        err, _raw, _t = btf_load(proc, GOOD, log_level=flags, log_size=len(full))
        assert err == errno.ENOSPC


def test_head_log(proc, profile):
    """The log before 6.4 (profile.verifier_log = head): the head of the log, NUL-terminated; a buffer it
    fills up (the last byte is for the NUL) makes a good load ENOSPC, a bad one keeps its errno; no
    BPF_LOG_FIXED, no buffer under 128 bytes."""
    if profile.verifier_log != "head":
        pytest.skip("%s's log rotates (profile.verifier_log = %s)" % (profile.version, profile.verifier_log))
    full = log_text(btf_load(proc, GOOD)[1])
    assert len(full) > 200
    err, raw, _t = btf_load(proc, GOOD, log_level=1, log_size=128)
    assert (err, log_text(raw), raw[127:128]) == (errno.ENOSPC, full[:127], b"\0")
    assert btf_load(proc, GOOD, log_level=1, log_size=len(full) + 1)[0] == errno.ENOSPC
    err, raw, _t = btf_load(proc, GOOD, log_level=1, log_size=len(full) + 2)
    assert (err, log_text(raw)) == (0, full)
    assert btf_load(proc, GOOD, log_level=1 | 8, log_size=1024)[0] == errno.EINVAL
    assert btf_load(proc, GOOD, log_level=1, log_size=127)[0] == errno.EINVAL
    bad = B().ptr(3).ptr(2).blob()
    assert btf_load(proc, bad, log_level=1, log_size=128)[0] == errno.EEXIST


def test_enospc_wins_over_the_verdict(proc, profile):
    """A rejected blob whose log does not fit reports ENOSPC, not its own errno."""
    rotating(profile)
    bad = B().ptr(3).ptr(2).blob()
    assert btf_load(proc, bad)[0] == errno.EEXIST
    assert btf_load(proc, bad, log_level=1, log_size=64)[0] == errno.ENOSPC
    assert btf_load(proc, bad, log_level=0, log_size=0)[0] == errno.EEXIST


def test_header_only_log_on_bad_magic(proc):
    err, raw, _t = btf_load(proc, B().blob(magic=0x1234))
    assert err == errno.EINVAL
    assert log_text(raw) == (b"magic: 0x1234\nversion: 1\nflags: 0x0\nhdr_len: 24\ntype_off: 0\ntype_len: 16\n"
                             b"str_off: 16\nstr_len: 5\nbtf_total_size: 45\nInvalid magic")


@pytest.mark.bpf_bad_pointers
def test_log_copy_that_faults_is_efault_with_the_true_size(proc, profile):
    """A log buffer that runs into a PROT_NONE page: the log's bytes before the page are written; from 6.4 the
    load is EFAULT whatever the verdict and btf_log_true_size still tells the size the whole log needs (6.1's
    log drops the buffer and the load succeeds)."""
    import mmap
    page = mmap.PAGESIZE
    full = log_text(btf_load(proc, GOOD)[1])
    mm = mmap.mmap(-1, 2 * page)
    base = ctypes.addressof(ctypes.c_char.from_buffer(mm))
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.mprotect(ctypes.c_void_p(base + page), page, 0) == 0
    try:
        data = ctypes.create_string_buffer(GOOD, len(GOOD))
        attr = uapi.make_attr(btf=ctypes.addressof(data), btf_size=len(GOOD), btf_log_level=1,
                              btf_log_size=len(full) + 1, btf_log_buf=base + page - 64)
        if profile.verifier_log == "head":   # before 6.4 the log drops its buffer and the load goes on
            proc.close(proc.bpf(uapi.BPF_BTF_LOAD, attr))
        else:
            with pytest.raises(OSError) as e:
                proc.close(proc.bpf(uapi.BPF_BTF_LOAD, attr))
            assert e.value.errno == errno.EFAULT
        assert ctypes.string_at(base + page - 64, 64) == full[:64]
        assert attr.btf_log_true_size == true_size(profile, len(full) + 1)
    finally:
        libc.mprotect(ctypes.c_void_p(base + page), page, 3)
