"""A program's BTF as libbpf holds it in userspace (libbpf's btf.c): read from ``.BTF``, edited, written back.

libbpf changes the BTF clang wrote before it loads it into the kernel: DATASEC sizes and variable offsets
(clang leaves them 0; the ELF section sizes and symbol values give them), variables and functions with
hidden visibility become static, the FUNCs of extern kfuncs inside the ``.ksyms`` DATASEC become
placeholder VARs (the kernel allows only VARs there). :class:`EditableBtf` holds the type records as
words, so those edits are word writes and appends; :meth:`EditableBtf.btf` gives a read-only
:class:`bpfemu.btf.Btf` over the current bytes for lookups.

The blob is trusted only as far as libbpf trusts it: a header, type records that fit, strings that end
in NUL. A malformed ``.BTF`` raises ValueError (the loader then goes on without BTF, as libbpf does when
its BTF cannot be used and nothing needs it).
"""
import struct

from ..btf import uapi as BU
from ..btf.btf import lazy_btf

_I = struct.Struct("<I")


class EditableBtf:
    """Type records (``[name_off, info, size_or_type, *extra words]``, index = type id, 0 is void) and the
    string section (bytes)."""

    def __init__(self, data):
        data = bytes(data)
        if len(data) < BU.HDR_SIZE:
            raise ValueError("BTF too short")
        magic, version, flags, hdr_len, type_off, type_len, str_off, str_len = BU.HDR.unpack_from(data, 0)
        if magic != BU.BTF_MAGIC or version != BU.BTF_VERSION:
            raise ValueError("bad BTF magic/version")
        if hdr_len < BU.HDR_SIZE or hdr_len + type_off + type_len > len(data) or \
                hdr_len + str_off + str_len > len(data):
            raise ValueError("BTF sections out of range")
        self.flags = flags
        tstart = hdr_len + type_off
        self.strings = bytearray(data[hdr_len + str_off:hdr_len + str_off + str_len])
        if not self.strings or self.strings[-1] != 0:
            raise ValueError("BTF string section does not end in NUL")
        self.types = [None]
        pos, end = tstart, tstart + type_len
        while pos < end:
            if pos + 12 > end:
                raise ValueError("truncated BTF type record")
            name_off, info, st = struct.unpack_from("<III", data, pos)
            kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
            if kind == 0 or kind > BU.BTF_KIND_MAX:
                raise ValueError("unknown BTF kind %d" % kind)
            n = BU.extra_size(kind, vlen)
            if pos + 12 + n > end:
                raise ValueError("truncated BTF type record")
            self.types.append([name_off, info, st] + list(struct.unpack_from("<%dI" % (n // 4), data, pos + 12)))
            pos += 12 + n
        self._btf = None

    # -- reading -------------------------------------------------------------------------------------
    def btf(self):
        """A read-only Btf of the current contents (rebuilt after edits)."""
        if self._btf is None:
            self._btf = lazy_btf(self.raw_bytes(), name="", kernel_btf=False)
        return self._btf

    def name(self, tid):
        return self.str_at(self.types[tid][0])

    def str_at(self, off):
        end = self.strings.find(b"\0", off)
        return self.strings[off:end].decode("latin-1")

    def kind(self, tid):
        return (self.types[tid][1] >> 24) & 0x1F

    def vlen(self, tid):
        return self.types[tid][1] & 0xFFFF

    def __len__(self):
        return len(self.types)

    def find(self, name, kind):
        """The first type id with this name and kind, or 0."""
        for tid in range(1, len(self.types)):
            if self.kind(tid) == kind and self.name(tid) == name:
                return tid
        return 0

    # -- editing ---------------------------------------------------------------------------------------
    def set_word(self, tid, i, value):
        """Word ``i`` of type ``tid``'s record (0 name_off, 1 info, 2 size/type, 3... the extra words)."""
        self.types[tid][i] = value & 0xFFFFFFFF
        self._btf = None

    def add_string(self, s):
        b = s.encode("latin-1") if isinstance(s, str) else bytes(s)
        off = len(self.strings)
        self.strings += b + b"\0"
        self._btf = None
        return off

    def add_type(self, words):
        self.types.append([w & 0xFFFFFFFF for w in words])
        self._btf = None
        return len(self.types) - 1

    def raw_bytes(self):
        tbytes = b"".join(struct.pack("<%dI" % len(t), *t) for t in self.types[1:])
        hdr = BU.HDR.pack(BU.BTF_MAGIC, BU.BTF_VERSION, self.flags, BU.HDR_SIZE, 0, len(tbytes), len(tbytes),
                          len(self.strings))
        return hdr + tbytes + bytes(self.strings)


# -- .BTF.ext --------------------------------------------------------------------------------------------

class BtfExt:
    """``.BTF.ext``: per section name, the func_info, line_info and CO-RE relocation records, each as
    (insn byte offset in the section, the rest of the record's words).

    ``func_info[sec]``: [(insn_off, type_id)]; ``line_info[sec]``: [(insn_off, file_name_off, line_off,
    line_col)]; ``core_relos[sec]``: [(insn_off, type_id, access_str_off, kind)]. Record sizes larger than
    the known ones are read (their tails ignored), as libbpf does; smaller ones are refused.
    """

    def __init__(self, data, strings_of):
        data = bytes(data)
        if len(data) < 8:
            raise ValueError(".BTF.ext too short")
        magic, version, flags, hdr_len = struct.unpack_from("<HBBI", data, 0)
        if magic != BU.BTF_MAGIC or version != 1:
            raise ValueError("bad .BTF.ext magic/version")
        if hdr_len < 24 or hdr_len > len(data):
            raise ValueError("bad .BTF.ext header")
        fi_off, fi_len, li_off, li_len = struct.unpack_from("<IIII", data, 8)
        self.func_info = self._sec(data, hdr_len, fi_off, fi_len, 8, strings_of)
        self.line_info = self._sec(data, hdr_len, li_off, li_len, 16, strings_of)
        self.core_relos = {}
        if hdr_len >= 32:
            cr_off, cr_len = struct.unpack_from("<II", data, 24)
            self.core_relos = self._sec(data, hdr_len, cr_off, cr_len, 16, strings_of)
        self.func_info_rec_size = 8
        self.line_info_rec_size = 16

    @staticmethod
    def _sec(data, hdr_len, off, length, min_rec, strings_of):
        out = {}
        if not length:
            return out
        start = hdr_len + off
        end = start + length
        if end > len(data) or length < 4:
            raise ValueError(".BTF.ext info out of range")
        rec = _I.unpack_from(data, start)[0]
        if rec < min_rec or rec % 4:
            raise ValueError(".BTF.ext record size %d" % rec)
        pos = start + 4
        nwords = min_rec // 4
        while pos < end:
            if pos + 8 > end:
                raise ValueError("truncated .BTF.ext section info")
            name_off, num = struct.unpack_from("<II", data, pos)
            pos += 8
            if pos + num * rec > end:
                raise ValueError("truncated .BTF.ext records")
            name = strings_of(name_off)
            out.setdefault(name, []).extend(
                struct.unpack_from("<%dI" % nwords, data, pos + i * rec) for i in range(num))
            pos += num * rec
        return out
