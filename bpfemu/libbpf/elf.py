"""The ELF side of a BPF object file (libbpf's elf.c and ``bpf_object__elf_collect``), read with pyelftools.

:class:`ElfObject` reads a clang-compiled ``-target bpf`` relocatable object and sorts its sections the way
libbpf does:

- ``license`` (a NUL-terminated string) and ``version`` (a u32: the kernel version kprobes once needed);
- program sections: ``SHT_PROGBITS`` with ``SHF_EXECINSTR`` and a nonzero size (``.text`` among them, the
  home of subprograms);
- ``.maps`` (BTF-defined maps) and ``maps`` (legacy ``struct bpf_map_def`` maps);
- global data: ``.data``/``.data.*`` and ``.rodata``/``.rodata.*`` (``SHT_PROGBITS``), ``.bss``/``.bss.*``
  (``SHT_NOBITS``);
- ``.BTF`` and ``.BTF.ext``;
- the relocation sections (``SHT_REL``) of program sections and of ``.maps``; those of debug info, ``.BTF``
  and ``.BTF.ext`` are for linkers and are left alone, as libbpf leaves them.

Nothing here knows about maps or programs; :mod:`bpfemu.libbpf.object` builds those from the sections.
A file that is not a 64-bit little-endian BPF relocatable object raises :class:`ObjectFormatError`
(libbpf's ``LIBBPF_ERRNO__FORMAT``).
"""
import errno
import io
import struct

EM_BPF = 247
SHF_EXECINSTR = 0x4
SHF_ALLOC = 0x2
SHN_UNDEF = 0
SHN_LORESERVE = 0xff00
SHN_ABS = 0xfff1
SHN_COMMON = 0xfff2
BPF_INSN_SZ = 8

# relocation types of the BPF backend (llvm's ELFRelocs/BPF.def)
R_BPF_NONE, R_BPF_64_64, R_BPF_64_ABS64, R_BPF_64_ABS32, R_BPF_64_NODYLD32, R_BPF_64_32 = 0, 1, 2, 3, 4, 10

# libbpf's own error numbers (libbpf.h, enum libbpf_errno)
LIBBPF_ERRNO__LIBELF = 4000
LIBBPF_ERRNO__FORMAT = 4001
LIBBPF_ERRNO__KVERSION = 4002
LIBBPF_ERRNO__ENDIAN = 4003
LIBBPF_ERRNO__INTERNAL = 4004
LIBBPF_ERRNO__RELOC = 4005
LIBBPF_ERRNO__LOAD = 4006
LIBBPF_ERRNO__VERIFY = 4007
LIBBPF_ERRNO__PROG2BIG = 4008
LIBBPF_ERRNO__KVER = 4009
LIBBPF_ERRNO__PROGTYPE = 4010
LIBBPF_ERRNO__WRNGPID = 4011
LIBBPF_ERRNO__INVSEQ = 4012
LIBBPF_ERRNO__NLPARSE = 4013

_LIBBPF_STRERROR = {
    LIBBPF_ERRNO__LIBELF: "Something wrong in libelf",
    LIBBPF_ERRNO__FORMAT: "BPF object format invalid",
    LIBBPF_ERRNO__KVERSION: "'version' section incorrect or lost",
    LIBBPF_ERRNO__ENDIAN: "Endian mismatch",
    LIBBPF_ERRNO__INTERNAL: "Internal error in libbpf",
    LIBBPF_ERRNO__RELOC: "Relocation failed",
    LIBBPF_ERRNO__LOAD: "Load BPF object failed",
    LIBBPF_ERRNO__VERIFY: "Kernel verifier blocks program loading",
    LIBBPF_ERRNO__PROG2BIG: "Program too big",
    LIBBPF_ERRNO__KVER: "Incorrect kernel version",
    LIBBPF_ERRNO__PROGTYPE: "Kernel doesn't support this program type",
}


class ObjectError(OSError):
    """A BPF object file libbpf would refuse: ``errno`` is libbpf's (an errno, or LIBBPF_ERRNO__*)."""

    def __init__(self, code, detail):
        OSError.__init__(self, code, detail)
        self.detail = detail

    def __str__(self):
        name = _LIBBPF_STRERROR.get(self.errno) or errno.errorcode.get(self.errno, str(self.errno))
        return "%s: %s" % (name, self.detail)


class ObjectFormatError(ObjectError):
    def __init__(self, detail):
        ObjectError.__init__(self, LIBBPF_ERRNO__FORMAT, detail)


class Section:
    """One ELF section: ``idx``, ``name``, ``type`` ('SHT_PROGBITS', ...), ``flags``, ``size``, ``data``
    (bytes; zeros for SHT_NOBITS), ``info`` and ``link``."""

    __slots__ = ("idx", "name", "type", "flags", "size", "data", "info", "link")

    def __init__(self, idx, name, stype, flags, size, data, info, link):
        self.idx, self.name, self.type, self.flags, self.size = idx, name, stype, flags, size
        self.data, self.info, self.link = data, info, link

    @property
    def executable(self):
        return bool(self.flags & SHF_EXECINSTR)

    def __repr__(self):
        return "<Section %d %r %s size %d>" % (self.idx, self.name, self.type, self.size)


class Symbol:
    """One ELF symbol: ``idx``, ``name``, ``bind`` ('STB_GLOBAL'...), ``type`` ('STT_FUNC'...),
    ``visibility`` ('STV_DEFAULT'...), ``shndx`` (an int; SHN_UNDEF 0 for externs), ``value``, ``size``."""

    __slots__ = ("idx", "name", "bind", "type", "visibility", "shndx", "value", "size")

    def __init__(self, idx, name, bind, stype, visibility, shndx, value, size):
        self.idx, self.name, self.bind, self.type, self.visibility = idx, name, bind, stype, visibility
        self.shndx, self.value, self.size = shndx, value, size

    @property
    def is_extern(self):
        """sym_is_extern: a global or weak symbol with no section and no type (or a function type)."""
        return (self.shndx == SHN_UNDEF and self.bind in ("STB_GLOBAL", "STB_WEAK")
                and self.type in ("STT_NOTYPE", "STT_FUNC"))

    @property
    def weak(self):
        return self.bind == "STB_WEAK"

    def __repr__(self):
        return "<Symbol %r %s %s shndx %d value %d>" % (self.name, self.bind, self.type, self.shndx, self.value)


class Reloc:
    """One relocation: ``offset`` (bytes into the target section), ``sym`` (a Symbol) and ``type``."""

    __slots__ = ("offset", "sym", "type")

    def __init__(self, offset, sym, rtype):
        self.offset, self.sym, self.type = offset, sym, rtype

    @property
    def insn_idx(self):
        return self.offset // BPF_INSN_SZ


_SHN_NAMES = {"SHN_UNDEF": SHN_UNDEF, "SHN_ABS": SHN_ABS, "SHN_COMMON": SHN_COMMON}


class ElfObject:
    """A BPF ELF object, its sections sorted as ``bpf_object__elf_collect`` sorts them.

    ``sections`` (all, by index), ``symbols`` (by index), ``relocs`` ({target section index: [Reloc]}),
    ``license`` (bytes), ``kern_version`` (int or None), ``btf`` and ``btf_ext`` (bytes or None),
    ``prog_sections`` (executable sections with code), ``text_shndx`` (the index of ``.text`` or 0),
    ``maps_shndx`` (``.maps`` or 0), ``legacy_maps_shndx`` (``maps`` or 0), ``data_sections`` ([(kind, Section)]
    with kind 'data', 'rodata' or 'bss').
    """

    def __init__(self, data, path=""):
        # pyelftools is imported on first use: `import bpfemu` (and `bpfemu exec`) do not need it
        from elftools.common.exceptions import ELFError
        from elftools.elf.elffile import ELFFile
        self.path = path
        self.raw = bytes(data)
        try:
            elf = ELFFile(io.BytesIO(self.raw))
        except (ELFError, struct.error, ValueError) as e:
            raise ObjectFormatError("failed to open %s as ELF file: %s" % (path or "object", e)) from None
        if elf.elfclass != 64 or not elf.little_endian:
            raise ObjectError(LIBBPF_ERRNO__ENDIAN if not elf.little_endian else LIBBPF_ERRNO__FORMAT,
                              "%s is not a 64-bit little-endian ELF object" % (path or "object"))
        if elf["e_type"] != "ET_REL" or elf["e_machine"] not in ("EM_BPF", EM_BPF):
            raise ObjectFormatError("%s is not a BPF relocatable object (e_type %s, e_machine %s)"
                                    % (path or "object", elf["e_type"], elf["e_machine"]))
        try:
            self._collect(elf)
        except (ELFError, struct.error, ValueError) as e:
            raise ObjectFormatError("corrupted ELF object %s: %s" % (path or "object", e)) from None

    def _collect(self, elf):
        self.sections = []
        symtab = None
        for idx, s in enumerate(elf.iter_sections()):
            stype = s["sh_type"]
            size = s["sh_size"]
            if stype == "SHT_NOBITS":
                data = bytes(size)
            elif stype == "SHT_NULL":
                data = b""
            else:
                data = s.data()
            sec = Section(idx, s.name, stype, s["sh_flags"], size, data, s["sh_info"], s["sh_link"])
            self.sections.append(sec)
            if stype == "SHT_SYMTAB":
                if symtab is not None:
                    raise ObjectFormatError("multiple symbol tables in %s" % (self.path or "object"))
                symtab = s
        if symtab is None:
            raise ObjectFormatError("%s has no symbol table" % (self.path or "object"))
        self.symbols = []
        for i, sym in enumerate(symtab.iter_symbols()):
            shndx = sym["st_shndx"]
            if isinstance(shndx, str):
                shndx = _SHN_NAMES.get(shndx, SHN_LORESERVE)
            self.symbols.append(Symbol(i, sym.name, sym["st_info"]["bind"], sym["st_info"]["type"],
                                       sym["st_other"]["visibility"], shndx, sym["st_value"], sym["st_size"]))
        self.license = b""
        self.kern_version = None
        self.btf = self.btf_ext = None
        self.prog_sections = []
        self.text_shndx = self.maps_shndx = self.legacy_maps_shndx = 0
        self.data_sections = []
        self.relocs = {}
        for sec in self.sections:
            name = sec.name
            if sec.type == "SHT_REL":
                continue
            if name == "license":
                self.license = sec.data.split(b"\0", 1)[0]
            elif name == "version":
                if len(sec.data) != 4:
                    raise ObjectError(LIBBPF_ERRNO__FORMAT, "invalid kver section in %s" % self.path)
                self.kern_version = struct.unpack("<I", sec.data)[0]
            elif name == "maps":
                self.legacy_maps_shndx = sec.idx
            elif name == ".maps":
                self.maps_shndx = sec.idx
            elif name == ".BTF":
                self.btf = sec.data
            elif name == ".BTF.ext":
                self.btf_ext = sec.data
            elif sec.type == "SHT_PROGBITS" and sec.size:
                if sec.executable:
                    if name == ".text":
                        self.text_shndx = sec.idx
                    self.prog_sections.append(sec)
                elif name == ".data" or name.startswith(".data."):
                    self.data_sections.append(("data", sec))
                elif name == ".rodata" or name.startswith(".rodata."):
                    self.data_sections.append(("rodata", sec))
            elif sec.type == "SHT_NOBITS" and sec.size and (name == ".bss" or name.startswith(".bss.")):
                self.data_sections.append(("bss", sec))
        wanted = {s.idx for s in self.prog_sections} | {self.maps_shndx}
        for sec in self.sections:
            if sec.type != "SHT_REL" or sec.info not in wanted or not sec.info:
                continue
            out = self.relocs.setdefault(sec.info, [])
            for off in range(0, len(sec.data) - 15, 16):
                r_offset, r_info = struct.unpack_from("<QQ", sec.data, off)
                si = r_info >> 32
                if si >= len(self.symbols):
                    raise ObjectFormatError("relocation against symbol #%d of %d in %s"
                                            % (si, len(self.symbols), sec.name))
                out.append(Reloc(r_offset, self.symbols[si], r_info & 0xffffffff))

    def section(self, idx):
        return self.sections[idx] if 0 < idx < len(self.sections) else None

    def section_by_name(self, name):
        for s in self.sections:
            if s.name == name:
                return s
        return None

    def symbols_in(self, shndx):
        """The symbols defined in section ``shndx``, by value (then by name)."""
        return sorted((s for s in self.symbols if s.shndx == shndx), key=lambda s: (s.value, s.name))

    def symbol_by_name(self, name, types=("STT_OBJECT",)):
        """find_elf_var_sym: the global data symbol of this name (None when there is none)."""
        for s in self.symbols:
            if s.name == name and s.type in types and s.bind in ("STB_GLOBAL", "STB_WEAK", "STB_LOCAL"):
                return s
        return None
