"""include/uapi/linux/btf.h: the BTF wire format (header, type records, limits).

All records are little-endian on the hosts bpfemu runs on (x86_64, aarch64, ...);
sizes are in bytes.
"""
import struct

BTF_MAGIC = 0xEB9F
BTF_VERSION = 1

HDR = struct.Struct("<HBBIIIII")  # magic, version, flags, hdr_len, type_off, type_len, str_off, str_len
HDR_SIZE = HDR.size  # 24 == sizeof(struct btf_header)
TYPE = struct.Struct("<III")  # name_off, info, size/type == sizeof(struct btf_type)

BTF_MAX_TYPE = 0x000FFFFF
BTF_MAX_NAME_OFFSET = 0x00FFFFFF
BTF_MAX_VLEN = 0xFFFF
BTF_MAX_SIZE = 16 * 1024 * 1024  # kernel/bpf/btf.c: largest blob BPF_BTF_LOAD copies in (E2BIG above)

(BTF_KIND_UNKN, BTF_KIND_INT, BTF_KIND_PTR, BTF_KIND_ARRAY, BTF_KIND_STRUCT, BTF_KIND_UNION, BTF_KIND_ENUM,
 BTF_KIND_FWD, BTF_KIND_TYPEDEF, BTF_KIND_VOLATILE, BTF_KIND_CONST, BTF_KIND_RESTRICT, BTF_KIND_FUNC,
 BTF_KIND_FUNC_PROTO, BTF_KIND_VAR, BTF_KIND_DATASEC, BTF_KIND_FLOAT, BTF_KIND_DECL_TAG, BTF_KIND_TYPE_TAG,
 BTF_KIND_ENUM64) = range(20)
NR_BTF_KINDS = 20
BTF_KIND_MAX = NR_BTF_KINDS - 1

# btf_kind_str[] of kernel/bpf/btf.c: the names the verifier log prints
KIND_STR = ("UNKNOWN", "INT", "PTR", "ARRAY", "STRUCT", "UNION", "ENUM", "FWD", "TYPEDEF", "VOLATILE", "CONST",
            "RESTRICT", "FUNC", "FUNC_PROTO", "VAR", "DATASEC", "FLOAT", "DECL_TAG", "TYPE_TAG", "ENUM64")

BTF_INT_SIGNED = 1 << 0
BTF_INT_CHAR = 1 << 1
BTF_INT_BOOL = 1 << 2

BTF_VAR_STATIC = 0
BTF_VAR_GLOBAL_ALLOCATED = 1
BTF_VAR_GLOBAL_EXTERN = 2

BTF_FUNC_STATIC = 0
BTF_FUNC_GLOBAL = 1
BTF_FUNC_EXTERN = 2


def BTF_INFO_KIND(info):
    return (info >> 24) & 0x1F


def BTF_INFO_VLEN(info):
    return info & 0xFFFF


def BTF_INFO_KFLAG(info):
    return info >> 31


def BTF_INFO_ENC(kind, kflag, vlen):
    return ((1 if kflag else 0) << 31) | ((kind & 0x1F) << 24) | (vlen & BTF_MAX_VLEN)


def BTF_INT_ENCODING(v):
    return (v & 0x0F000000) >> 24


def BTF_INT_OFFSET(v):
    return (v & 0x00FF0000) >> 16


def BTF_INT_BITS(v):
    return v & 0x000000FF


def BTF_INT_ENC(encoding, bits_offset, nr_bits):
    return (encoding << 24) | (bits_offset << 16) | nr_bits


def BTF_MEMBER_BITFIELD_SIZE(v):
    return v >> 24


def BTF_MEMBER_BIT_OFFSET(v):
    return v & 0xFFFFFF


def BTF_MEMBER_OFFSET(bitfield_size, bits_offset):
    return (bitfield_size << 24) | bits_offset


# Size of the record that follows struct btf_type, per kind: fixed bytes, bytes per vlen entry.
EXTRA = {
    BTF_KIND_INT: (4, 0), BTF_KIND_ARRAY: (12, 0), BTF_KIND_STRUCT: (0, 12), BTF_KIND_UNION: (0, 12),
    BTF_KIND_ENUM: (0, 8), BTF_KIND_FUNC_PROTO: (0, 8), BTF_KIND_VAR: (4, 0), BTF_KIND_DATASEC: (0, 12),
    BTF_KIND_DECL_TAG: (4, 0), BTF_KIND_ENUM64: (0, 12),
}


def extra_size(kind, vlen):
    fixed, per = EXTRA.get(kind, (0, 0))
    return fixed + per * vlen
