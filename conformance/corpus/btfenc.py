"""Raw BTF blobs for BPF_BTF_LOAD: the types the verifier selftests give their maps and programs.

``raw_btf(types, strings)`` frames a type section (a list of u32 words, as the selftests' ``btf_types``
arrays hold them) and a string section into ``struct btf_header`` + types + strings
(``include/uapi/linux/btf.h``).

``MAP_BTF`` is the BTF test_verifier loads for its special-field maps, built here from what those maps
need: ``int`` (id 1); ``struct val { int cnt; struct bpf_spin_lock l; }`` (id 3, for the spin-lock map);
``struct timer { struct bpf_timer t; }`` (id 5, for the timer map); and ``struct btf_ptr`` (id 14) with
three kptr fields (an unreferenced kptr to ``prog_test_ref_kfunc`` and referenced kptrs to
``prog_test_ref_kfunc`` and ``prog_test_member``), for the kptr map. Value type ids: ``SPIN_LOCK_VALUE``,
``TIMER_VALUE``, ``KPTR_VALUE``.

The type tags use the names of the kernels since 6.2 (``KPTR_TAGS``): what 6.1 called ``kptr`` (unreferenced)
is ``kptr_untrusted`` there, and 6.1's ``kptr_ref`` is ``kptr``. With 6.1's names a 6.18 kernel refuses the
whole BTF (EINVAL, with no message), so none of the spin-lock, timer or kptr maps could be made.
"""
import struct

BTF_MAGIC = 0xEB9F
KIND = {"int": 1, "ptr": 2, "struct": 4, "type_tag": 18}


def info(kind, vlen=0, kflag=0):
    return (KIND[kind] << 24) | (vlen & 0xffff) | (kflag << 31)


def raw_btf(types, strings):
    """``bytes`` of a BTF object: header (24 bytes) + the u32 type words + the string section."""
    tsec = struct.pack("<%dI" % len(types), *[t & 0xffffffff for t in types])
    hdr = struct.pack("<HBBIIIII", BTF_MAGIC, 1, 0, 24, 0, len(tsec), len(tsec), len(strings))
    return hdr + tsec + bytes(strings)


class _Strings:
    def __init__(self):
        self.buf = bytearray(b"\0")
        self.at = {"": 0}

    def __call__(self, s):
        if s not in self.at:
            self.at[s] = len(self.buf)
            self.buf += s.encode() + b"\0"
        return self.at[s]


KPTR_TAGS = ("kptr_untrusted", "kptr")  # (unreferenced, referenced)


def _map_btf():
    s = _Strings()
    w = []

    def struct_(name, size, members):
        w.extend([s(name), info("struct", len(members)), size])
        for mname, mtype, bitoff in members:
            w.extend([s(mname), mtype, bitoff])

    w.extend([s("int"), info("int"), 4, (1 << 24) | 32])            # [1] int: signed, 32 bits
    struct_("bpf_spin_lock", 4, [("val", 1, 0)])                     # [2]
    struct_("val", 8, [("cnt", 1, 0), ("l", 2, 32)])                 # [3]
    struct_("bpf_timer", 16, [])                                     # [4]
    struct_("timer", 16, [("t", 4, 0)])                              # [5]
    struct_("prog_test_ref_kfunc", 0, [])                            # [6]
    struct_("prog_test_member", 0, [])                               # [7]
    unref, ref = KPTR_TAGS
    w.extend([s(unref), info("type_tag"), 6])                        # [8]
    w.extend([s(ref), info("type_tag"), 6])                          # [9]
    w.extend([s(ref), info("type_tag"), 7])                          # [10]
    for target in (8, 9, 10):                                        # [11] [12] [13]
        w.extend([0, info("ptr"), target])
    struct_("btf_ptr", 24, [("ptr", 11, 0), ("ptr", 12, 64), ("ptr", 13, 128)])  # [14]
    return raw_btf(w, bytes(s.buf))


MAP_BTF = _map_btf()
INT_TYPE = 1
SPIN_LOCK_VALUE = 3
TIMER_VALUE = 5
KPTR_VALUE = 14
