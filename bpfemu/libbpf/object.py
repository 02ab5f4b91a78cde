"""bpfemu.Object: a clang-compiled BPF object file, opened and loaded as libbpf does it (libbpf.c's
``bpf_object__open`` and ``bpf_object__load``), on any bpf(2) backend.

::

    obj = Object.open("xdp_counter.bpf.o")     # parse: programs, maps, BTF, relocations
    obj.rodata.multiplier = 3                   # global data may be set before load
    obj.maps["by_source"].max_entries = 64      # and map definitions changed
    obj.load(sys)                               # an emulated task, bpfemu.Host() or a HostTask
    obj.programs["xdp_count"]                   # a bpfemu.Program
    obj.maps["by_source"]                       # a bpfemu.Map
    obj.close()

**Open** reads the ELF (:mod:`.elf`), the program sections (one program per global function symbol;
functions of ``.text`` are subprograms), their section definitions (:mod:`.section_defs`: the program type,
expected attach type and flags libbpf gives each ``SEC()`` name), the maps (:mod:`.maps`: BTF-defined,
legacy, global data), the BTF with libbpf's fix-ups (DATASEC sizes and offsets from the ELF, hidden symbols
made static, extern kfuncs in ``.ksyms`` replaced by placeholder variables), ``.BTF.ext`` and the
relocations of every program section.

**Load**, in libbpf's order: the kernel BTF of the target when something needs it (CO-RE relocations,
``__ksym`` externs, BTF attach targets), the externs, BPF_BTF_LOAD of the object's BTF (if the kernel
refuses it, maps and programs go on without BTF, as libbpf does), the maps (BPF_MAP_CREATE with their BTF
types, retried without them if refused; initial contents of global data, ``.rodata`` and ``.kconfig``
frozen; maps pinned by name reused or pinned), the relocations (CO-RE against the kernel BTF, map
references and global data in ld_imm64, kfunc calls and ksym addresses, subprograms appended after each
program that calls them with their func_info and line_info), the programs (BPF_PROG_LOAD with the BTF,
func_info and line_info; ``.rodata`` bound with BPF_PROG_BIND_MAP), and the initial slots of program
arrays and maps of maps.

Errors are OSErrors: the kernel's (a :class:`bpfemu.BpfError`; a refused program's carries the verifier
log in ``.log``) or libbpf's (:class:`ObjectError`, with libbpf's errno: EINVAL, ENOENT, ESRCH, or
``LIBBPF_ERRNO__FORMAT``/``__RELOC``). A failed load closes everything it had created.
"""
import ctypes
import errno
import os
import struct

from .. import uapi as U
from ..api.errors import BpfError
from ..api.map import Map, btf_load
from ..api.program import Program
from ..btf import uapi as BU
from ..btf.dump import to_python
from . import relo_core
from .btf_edit import BtfExt, EditableBtf
from .elf import (BPF_INSN_SZ, LIBBPF_ERRNO__FORMAT, LIBBPF_ERRNO__RELOC, SHN_LORESERVE, ElfObject,
                  ObjectError)
from .maps import (LIBBPF_PIN_BY_NAME, MAP_IN_MAP, MAP_KCONFIG, MAP_RODATA, NO_BTF_TYPES,
                   MapSpec, adjust_ringbuf_size, btf_defined_maps, global_data_maps, internal_map_name,
                   legacy_maps)
from .section_defs import SEC_ATTACH_BTF, SEC_SLEEPABLE, SEC_XDP_FRAGS, attach_target, find_sec_def

__all__ = ["Object", "ProgramSpec", "MapSpec", "ObjectError", "GlobalData"]

BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE, BPF_PSEUDO_BTF_ID, BPF_PSEUDO_FUNC = 1, 2, 3, 4
BPF_PSEUDO_CALL, BPF_PSEUDO_KFUNC_CALL = 1, 2
BPF_CALL_CODE = 0x85   # BPF_JMP | BPF_CALL
BPF_LD_IMM64 = 0x18
BPF_F_SLEEPABLE = 1 << 4
BPF_F_XDP_HAS_FRAGS = 1 << 5
KSYMS_SEC, KCONFIG_SEC = ".ksyms", ".kconfig"
_INSN = struct.Struct("<BBhi")


def _decode(raw):
    return [(c, r & 0xf, r >> 4, o, i) for c, r, o, i in _INSN.iter_unpack(raw)]


def _encode(insns):
    return b"".join(_INSN.pack(c, (d & 0xf) | ((s & 0xf) << 4), o, i) for c, d, s, o, i in insns)


def _is_call(insn):
    return insn[0] == BPF_CALL_CODE


def _is_subprog_call(insn):
    return insn[0] == BPF_CALL_CODE and insn[2] == BPF_PSEUDO_CALL


def _is_pseudo_func(insn):
    return insn[0] == BPF_LD_IMM64 and insn[2] == BPF_PSEUDO_FUNC


def _prog_type_name(t):
    for k, v in vars(U).items():
        if k.startswith("BPF_PROG_TYPE_") and v == t:
            return k[len("BPF_PROG_TYPE_"):].lower()
    return "unspec" if not t else str(t)


def _s32(v):
    v &= 0xffffffff
    return v - (1 << 32) if v >> 31 else v


class ProgramSpec:
    """A program (or a subprogram of ``.text``) before load: ``name``, ``section``, ``prog_type``,
    ``expected_attach_type``, ``prog_flags``, ``autoload``, ``insns`` (its instructions as in the section:
    tuples ``(code, dst, src, off, imm)``), ``attach_btf_id`` (0: found from the section name at load),
    ``log_level``, ``kern_version``. Settable before load. After a load (even a refused one):
    ``loaded_insns``, ``func_info`` and ``line_info``, what PROG_LOAD was given."""

    def __init__(self, name, sec, insn_off, insns):
        self.name = name
        self.section = sec.name
        self.sec_idx = sec.idx
        self.sec_insn_off = insn_off
        self.insns = insns
        self.sec_def = None
        self.prog_type = 0
        self.expected_attach_type = 0
        self.prog_flags = 0
        self.autoload = True
        self.attach_btf_id = 0
        self.attach_target = None
        self.log_level = 0
        self.sym_global = False
        self.mark_btf_static = False
        self.is_subprog = False
        self.relos = {}   # insn index within the program -> (kind, data)
        self.loaded_insns = None   # what the last load sent to PROG_LOAD (relocated, subprograms appended)
        self.func_info = self.line_info = None

    @property
    def sec_insn_cnt(self):
        return len(self.insns)

    def __repr__(self):
        return "<ProgramSpec %r SEC(%r) type %s>" % (self.name, self.section, _prog_type_name(self.prog_type))


class Extern:
    """An ``extern`` symbol the object needs resolved: a kfunc (``kind`` 'kfunc'), a kernel variable
    (``'ksym'``) or a ``.kconfig`` value (``'kconfig'``)."""

    def __init__(self, sym, kind, btf_id):
        self.sym = sym
        self.name = sym.name
        self.kind = kind
        self.btf_id = btf_id
        self.weak = sym.weak
        self.resolved = False
        self.kernel_btf_id = 0
        self.kcfg_off = 0
        self.kcfg_size = 0
        self.kcfg_signed = False


class GlobalData:
    """The variables of one global data section (``obj.rodata``, ``obj.data``, ``obj.bss``, or
    ``obj.section(".data.foo")``), by name: ``gd.counter`` / ``gd["counter"]``.

    Before load, reading and writing change the section's initial contents (integers by their BTF type,
    ``bytes`` for anything else, ``str`` for char arrays); after load they read and write element 0 of the
    map (writing ``.rodata`` then fails with EPERM: it is frozen)."""

    def __init__(self, obj, spec):
        object.__setattr__(self, "_obj", obj)
        object.__setattr__(self, "_spec", spec)

    def _vars(self):
        obj, spec = self._obj, self._spec
        btf = obj.btf.btf() if obj.btf is not None else None
        if btf is None or not spec.datasec_id:
            return {}, btf
        ds = btf.type_by_id(spec.datasec_id)
        out = {}
        for var_id, off, size in ds.vsis:
            v = btf.type_by_id(var_id)
            if v.kind == BU.BTF_KIND_VAR:
                out[(btf.str_by_offset(v.name_off) or b"").decode("latin-1")] = (v.type, off, size)
        return out, btf

    def names(self):
        return list(self._vars()[0])

    def _bytes(self):
        m = self._obj._loaded_maps.get(self._spec.name)
        if m is None:
            return self._spec.data
        return bytearray(m.lookup(0))

    def __getitem__(self, name):
        vs, btf = self._vars()
        if name not in vs:
            raise KeyError("%s has no variable %r" % (self._spec.section, name))
        tid, off, size = vs[name]
        return _decode_var(btf, tid, bytes(self._bytes()[off:off + size]))

    def __setitem__(self, name, value):
        vs, btf = self._vars()
        if name not in vs:
            raise KeyError("%s has no variable %r" % (self._spec.section, name))
        tid, off, size = vs[name]
        raw = _encode_var(btf, tid, size, value)
        m = self._obj._loaded_maps.get(self._spec.name)
        if m is None:
            self._spec.data[off:off + size] = raw
            return
        cur = bytearray(m.lookup(0))
        cur[off:off + size] = raw
        m.update(0, bytes(cur))

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError as e:
            raise AttributeError(str(e)) from None

    def __setattr__(self, name, value):
        self[name] = value

    def __dir__(self):
        return self.names()

    def __repr__(self):
        return "<GlobalData %s: %s>" % (self._spec.section, ", ".join(self.names()))


def _decode_var(btf, tid, raw):
    t, _ = relo_core.skip_mods(btf, tid)
    if t is not None and t.kind in (BU.BTF_KIND_INT, BU.BTF_KIND_ENUM, BU.BTF_KIND_ENUM64) and len(raw) in (1, 2, 4, 8):
        signed = bool((t.int_data >> 24) & BU.BTF_INT_SIGNED) if t.kind == BU.BTF_KIND_INT else bool(t.kflag)
        return int.from_bytes(raw, "little", signed=signed)
    if t is not None and t.kind == BU.BTF_KIND_ARRAY:
        et, _ = relo_core.skip_mods(btf, t.array[0])
        if et is not None and et.kind == BU.BTF_KIND_INT and et.size == 1:
            return raw
    try:
        return to_python(btf, tid, raw)
    except Exception:  # noqa: BLE001 - a type the decoder does not know: the bytes
        return raw


def _encode_var(btf, tid, size, value):
    if isinstance(value, (bytes, bytearray, memoryview)):
        b = bytes(value)
        if len(b) > size:
            raise ValueError("%d bytes do not fit a variable of %d bytes" % (len(b), size))
        return b.ljust(size, b"\0")
    if isinstance(value, str):
        return _encode_var(btf, tid, size, value.encode())
    if isinstance(value, bool) or isinstance(value, int):
        t, _ = relo_core.skip_mods(btf, tid)
        signed = t is not None and ((t.kind == BU.BTF_KIND_INT and (t.int_data >> 24) & BU.BTF_INT_SIGNED)
                                    or (t.kind in (BU.BTF_KIND_ENUM, BU.BTF_KIND_ENUM64) and t.kflag))
        if size not in (1, 2, 4, 8):
            raise TypeError("an int does not fit a variable of %d bytes" % size)
        return int(value).to_bytes(size, "little", signed=bool(signed) and value < 0)
    raise TypeError("cannot store %r in a variable of %d bytes (give int or bytes)" % (value, size))


class Object:
    """A BPF object file (``struct bpf_object``): open with :meth:`open`, then :meth:`load` on a backend.

    ``name`` (the file name up to its first '.'), ``license``, ``kern_version``, ``programs`` ({name:
    ProgramSpec before load, :class:`bpfemu.Program` after}), ``maps`` ({name: MapSpec, then
    :class:`bpfemu.Map`}), ``btf`` (the object's BTF, fixed up), ``btf_fd`` once loaded, ``rodata``,
    ``data``, ``bss``, ``kconfig`` (:class:`GlobalData`, None when the section does not exist)."""

    def __init__(self, data, path="", name=None):
        self.path = path
        base = os.path.basename(path) if path else (name or "")
        self.name = name or base.split(".", 1)[0]
        self.elf = ElfObject(data, path)
        self.license = self.elf.license.decode("latin-1")
        self.kern_version = self.elf.kern_version or 0
        self.sys = None
        self.btf_fd = None
        self.loaded = False
        self._loaded_maps = {}
        self._prog_fds = {}
        self._owned_fds = []
        self._read_btf()
        self._collect_programs()
        self._collect_externs()
        self._fixup_btf()
        self._collect_maps()
        self._collect_relos()

    @classmethod
    def open(cls, path, name=None):
        """bpf_object__open_file: read and parse ``path``. ``name`` overrides the object name (the prefix of
        global data map names)."""
        with open(path, "rb") as f:
            data = f.read()
        return cls(data, str(path), name)

    @classmethod
    def from_bytes(cls, data, name="obj"):
        """bpf_object__open_mem."""
        return cls(data, "", name)

    # -- open ------------------------------------------------------------------------------------------
    def _read_btf(self):
        self.btf = None
        self.btf_ext = None
        if self.elf.btf is None:
            return
        try:
            self.btf = EditableBtf(self.elf.btf)
        except ValueError:
            self.btf = None  # libbpf goes on without BTF unless something needs it
            return
        if self.elf.btf_ext is not None:
            strs = self.btf

            def name_of(off):
                return strs.str_at(off)
            try:
                self.btf_ext = BtfExt(self.elf.btf_ext, name_of)
            except ValueError:
                self.btf_ext = None

    def _collect_programs(self):
        elf = self.elf
        progs = []
        for sec in elf.prog_sections:
            data = sec.data
            for sym in elf.symbols_in(sec.idx):
                if sym.type != "STT_FUNC":
                    continue
                if sym.value + sym.size > len(data):
                    raise ObjectError(LIBBPF_ERRNO__FORMAT, "sec '%s': program at offset %d crosses section "
                                      "boundary" % (sec.name, sym.value))
                if sec.idx != elf.text_shndx and sym.bind == "STB_LOCAL":
                    raise ObjectError(errno.ENOTSUP, "sec '%s': program '%s' is static and not supported"
                                      % (sec.name, sym.name))
                if sym.value % BPF_INSN_SZ or sym.size % BPF_INSN_SZ:
                    raise ObjectError(LIBBPF_ERRNO__FORMAT, "sec '%s': program '%s' is not instruction-aligned"
                                      % (sec.name, sym.name))
                p = ProgramSpec(sym.name, sec, sym.value // BPF_INSN_SZ,
                                _decode(data[sym.value:sym.value + sym.size]))
                p.sym_global = sym.bind != "STB_LOCAL"
                p.mark_btf_static = p.sym_global and sym.visibility in ("STV_HIDDEN", "STV_INTERNAL")
                p.is_subprog = sec.idx == elf.text_shndx
                if not p.is_subprog:
                    name = sec.name
                    if name.startswith("?"):
                        p.autoload = False
                    d = find_sec_def(name)
                    p.sec_def = d
                    if d is not None:
                        p.prog_type = d.prog_type
                        p.expected_attach_type = d.expected_attach_type
                        if d.flags & SEC_SLEEPABLE:
                            p.prog_flags |= BPF_F_SLEEPABLE
                        if d.flags & SEC_XDP_FRAGS and d.prog_type == U.BPF_PROG_TYPE_XDP:
                            p.prog_flags |= BPF_F_XDP_HAS_FRAGS
                        if d.flags & SEC_ATTACH_BTF:
                            p.attach_target = attach_target(d, name)
                p.kern_version = self.kern_version
                progs.append(p)
        progs.sort(key=lambda p: (p.sec_idx, p.sec_insn_off))
        self._all_progs = progs
        names = {}
        for p in progs:
            if p.name in names:
                raise ObjectError(errno.EINVAL, "program name '%s' is not unique" % p.name)
            names[p.name] = p
        self.programs = {p.name: p for p in progs if not p.is_subprog}

    def _collect_maps(self):
        btf = self.btf.btf() if self.btf is not None else None
        specs = btf_defined_maps(self.elf, btf) + legacy_maps(self.elf) + global_data_maps(self.elf, btf, self.name)
        for s in specs:
            if s.type in (U.BPF_MAP_TYPE_RINGBUF, U.BPF_MAP_TYPE_USER_RINGBUF):
                s.max_entries = adjust_ringbuf_size(s.max_entries)
        if self._kconfig_size is not None:
            specs.append(self._kconfig_map())
        self._map_specs = specs
        self.maps = {}
        for s in specs:
            if s.name in self.maps:
                raise ObjectError(errno.EEXIST, "map '%s' is defined twice" % s.name)
            self.maps[s.name] = s

    def _collect_externs(self):
        """bpf_object__collect_externs: extern symbols and the BTF VAR/FUNC and DATASEC of each."""
        self.externs = []
        self._kconfig_size = None
        if not any(s.is_extern for s in self.elf.symbols):
            return
        if self.btf is None:
            raise ObjectError(errno.ESRCH, "extern symbols need BTF, and the object has none")
        eb = self.btf
        for sym in self.elf.symbols:
            if not sym.is_extern:
                continue
            tid = 0
            for i in range(1, len(eb)):
                k = eb.kind(i)
                if k in (BU.BTF_KIND_VAR, BU.BTF_KIND_FUNC) and eb.name(i) == sym.name:
                    linkage = eb.types[i][3] if k == BU.BTF_KIND_VAR else eb.vlen(i)
                    if linkage == (BU.BTF_VAR_GLOBAL_EXTERN if k == BU.BTF_KIND_VAR else BU.BTF_FUNC_EXTERN):
                        tid = i
                        break
            if not tid:
                raise ObjectError(errno.ESRCH, "failed to find BTF for extern '%s'" % sym.name)
            sec = ""
            for i in range(1, len(eb)):
                if eb.kind(i) == BU.BTF_KIND_DATASEC:
                    vs = eb.types[i][3:]
                    if tid in vs[0::3]:
                        sec = eb.name(i)
                        break
            if sec == KCONFIG_SEC:
                kind = "kconfig"
            elif sec == KSYMS_SEC or eb.kind(tid) == BU.BTF_KIND_FUNC:
                kind = "kfunc" if eb.kind(tid) == BU.BTF_KIND_FUNC else "ksym"
            else:
                raise ObjectError(errno.ENOTSUP, "extern '%s' is in unsupported section '%s'" % (sym.name, sec))
            self.externs.append(Extern(sym, kind, tid))
        self._layout_kconfig()
        self._sanitize_ksyms()

    def _layout_kconfig(self):
        eb = self.btf
        kc = [e for e in self.externs if e.kind == "kconfig"]
        if not kc:
            return
        for e in kc:
            t, _ = relo_core.skip_mods(eb.btf(), eb.types[e.btf_id][2])
            size = t.size if t is not None and t.kind in (BU.BTF_KIND_INT, BU.BTF_KIND_ENUM, BU.BTF_KIND_ENUM64) \
                else None
            align = size
            if size is None and t is not None and t.kind == BU.BTF_KIND_ARRAY:
                r = eb.btf().resolve_size(eb.types[e.btf_id][2])
                size, align = (r[1], 1) if r else (None, 1)
            if not size:
                raise ObjectError(errno.ENOTSUP, "extern (kcfg) '%s': unsupported type" % e.name)
            e.kcfg_size, e.kcfg_align = size, min(align, 8)
            e.kcfg_signed = t.kind == BU.BTF_KIND_INT and bool((t.int_data >> 24) & BU.BTF_INT_SIGNED)
        off = 0
        # cmp_externs: by alignment (largest first), then size (smallest first), then name
        for e in sorted(kc, key=lambda e: (-e.kcfg_align, e.kcfg_size, e.name)):
            off = (off + e.kcfg_align - 1) // e.kcfg_align * e.kcfg_align
            e.kcfg_off = off
            off += e.kcfg_size
        ds = eb.find(KCONFIG_SEC, BU.BTF_KIND_DATASEC)
        if ds:
            eb.set_word(ds, 2, off)
            vs = eb.types[ds]
            by_id = {e.btf_id: e for e in kc}
            for i in range(eb.vlen(ds)):
                e = by_id.get(vs[3 + 3 * i])
                if e is not None:
                    eb.set_word(ds, 3 + 3 * i + 1, e.kcfg_off)
                    eb.set_word(ds, 3 + 3 * i + 2, e.kcfg_size)
        self._kconfig_size = off
        self._kconfig_ds = ds

    def _kconfig_map(self):
        """The internal map of the .kconfig externs (bpf_object__init_kconfig_map)."""
        spec = MapSpec(internal_map_name(self.name, KCONFIG_SEC), MAP_KCONFIG)
        spec.real_name = spec.section = KCONFIG_SEC
        spec.type, spec.key_size, spec.value_size, spec.max_entries = U.BPF_MAP_TYPE_ARRAY, 4, self._kconfig_size, 1
        spec.map_flags = U.BPF_F_RDONLY_PROG | U.BPF_F_MMAPABLE
        spec.data = bytearray(self._kconfig_size)
        spec.btf_value_type_id = spec.datasec_id = self._kconfig_ds
        spec.sec_idx = -1
        return spec

    def _sanitize_ksyms(self):
        """The ``.ksyms`` DATASEC as the kernel accepts it: FUNCs replaced by a placeholder VAR, every entry
        an int-sized slot (libbpf's add_dummy_ksym_var and the end of collect_externs)."""
        eb = self.btf
        ds = eb.find(KSYMS_SEC, BU.BTF_KIND_DATASEC)
        if not ds:
            return
        n = eb.vlen(ds)
        vs = eb.types[ds]
        int_id = next((i for i in range(1, len(eb)) if eb.kind(i) == BU.BTF_KIND_INT
                       and eb.types[i][3] & 0xff == 32), 0)
        dummy = 0
        if any(eb.kind(vs[3 + 3 * i]) == BU.BTF_KIND_FUNC for i in range(n)):
            name_off = eb.add_string("dummy_ksym")
            dummy = eb.add_type([name_off, BU.BTF_INFO_ENC(BU.BTF_KIND_VAR, 0, 0), int_id,
                                 BU.BTF_VAR_GLOBAL_ALLOCATED])
        for i in range(n):
            tid = eb.types[ds][3 + 3 * i]
            if eb.kind(tid) == BU.BTF_KIND_FUNC:
                proto = eb.types[tid][2]
                if eb.kind(proto) == BU.BTF_KIND_FUNC_PROTO:
                    for j in range(eb.vlen(proto)):
                        if eb.types[proto][3 + 2 * j + 1] and not eb.types[proto][3 + 2 * j]:
                            eb.set_word(proto, 3 + 2 * j, eb.types[dummy][0])
                eb.set_word(ds, 3 + 3 * i, dummy)
                eb.set_word(tid, 1, BU.BTF_INFO_ENC(BU.BTF_KIND_FUNC, 0, BU.BTF_FUNC_GLOBAL))
            else:
                eb.set_word(tid, 3, BU.BTF_VAR_GLOBAL_ALLOCATED)
                eb.set_word(tid, 2, int_id)
            eb.set_word(ds, 3 + 3 * i + 1, 4 * i)
            eb.set_word(ds, 3 + 3 * i + 2, 4)
        eb.set_word(ds, 2, 4 * n)

    def _fixup_btf(self):
        """bpf_object_fixup_btf (DATASEC sizes and variable offsets from the ELF, hidden variables static)
        and, at load, the FUNCs of hidden global subprograms made static."""
        eb = self.btf
        if eb is None:
            return
        elf = self.elf
        for tid in range(1, len(eb)):
            if eb.kind(tid) != BU.BTF_KIND_DATASEC:
                continue
            sname = eb.name(tid)
            n = eb.vlen(tid)
            if sname not in (KCONFIG_SEC, KSYMS_SEC):
                fix_offsets = False
                if eb.types[tid][2] == 0:
                    sec = elf.section_by_name(sname)
                    if sec is None or not sec.size:
                        raise ObjectError(errno.ENOENT, "sec '%s': failed to determine size from ELF" % sname)
                    eb.set_word(tid, 2, sec.size)
                    fix_offsets = True
                for i in range(n):
                    vid = eb.types[tid][3 + 3 * i]
                    if eb.kind(vid) != BU.BTF_KIND_VAR:
                        raise ObjectError(errno.EINVAL, "sec '%s': unexpected non-VAR type found" % sname)
                    linkage = eb.types[vid][3]
                    if linkage in (BU.BTF_VAR_STATIC, BU.BTF_VAR_GLOBAL_EXTERN):
                        continue
                    sym = elf.symbol_by_name(eb.name(vid))
                    if sym is None:
                        raise ObjectError(errno.ENOENT, "sec '%s': failed to find ELF symbol for VAR '%s'"
                                          % (sname, eb.name(vid)))
                    if fix_offsets:
                        eb.set_word(tid, 3 + 3 * i + 1, sym.value)
                    if sym.visibility in ("STV_HIDDEN", "STV_INTERNAL"):
                        eb.set_word(vid, 3, BU.BTF_VAR_STATIC)
            # sort the variables by offset (compare_vsi_off)
            recs = [tuple(eb.types[tid][3 + 3 * i:6 + 3 * i]) for i in range(n)]
            recs.sort(key=lambda r: r[1])
            for i, r in enumerate(recs):
                for j in range(3):
                    eb.set_word(tid, 3 + 3 * i + j, r[j])
        for p in self._all_progs:
            if p.mark_btf_static and p.is_subprog:
                for tid in range(1, len(eb)):
                    if eb.kind(tid) == BU.BTF_KIND_FUNC and eb.vlen(tid) == BU.BTF_FUNC_GLOBAL and \
                            eb.name(tid) == p.name:
                        eb.set_word(tid, 1, BU.BTF_INFO_ENC(BU.BTF_KIND_FUNC, 0, BU.BTF_FUNC_STATIC))
                        break

    def _prog_at(self, sec_idx, insn_idx):
        for p in self._all_progs:
            if p.sec_idx == sec_idx and p.sec_insn_off <= insn_idx < p.sec_insn_off + p.sec_insn_cnt:
                return p
        return None

    def _collect_relos(self):
        """bpf_object__collect_prog_relos / bpf_program__record_reloc, and the initial slots in ``.maps``."""
        elf = self.elf
        for sec in elf.prog_sections:
            for r in elf.relocs.get(sec.idx, ()):
                idx = r.insn_idx
                p = self._prog_at(sec.idx, idx)
                if p is None:
                    continue  # code outside any function (libbpf skips it too)
                i = idx - p.sec_insn_off
                insn = p.insns[i]
                sym = r.sym
                if not _is_call(insn) and insn[0] != BPF_LD_IMM64:
                    raise ObjectError(LIBBPF_ERRNO__RELOC, "prog '%s': invalid relo against '%s' for insns[%d]"
                                      ".code 0x%x" % (p.name, sym.name, i, insn[0]))
                if sym.is_extern:
                    ext = next((e for e in self.externs if e.sym.idx == sym.idx), None)
                    if ext is None:
                        raise ObjectError(LIBBPF_ERRNO__RELOC, "prog '%s': extern relo failed to find extern for "
                                          "'%s'" % (p.name, sym.name))
                    p.relos[i] = ("extern_call" if _is_call(insn) else "extern_ld64", ext)
                    continue
                if _is_call(insn):
                    if insn[2] != BPF_PSEUDO_CALL:
                        raise ObjectError(LIBBPF_ERRNO__RELOC, "prog '%s': incorrect bpf_call opcode" % p.name)
                    if not sym.shndx or sym.shndx != elf.text_shndx:
                        raise ObjectError(LIBBPF_ERRNO__RELOC, "prog '%s': bad call relo against '%s'"
                                          % (p.name, sym.name))
                    p.relos[i] = ("call", sym.value)
                    continue
                if not sym.shndx or sym.shndx >= SHN_LORESERVE:
                    raise ObjectError(LIBBPF_ERRNO__RELOC, "prog '%s': invalid relo against '%s' in special "
                                      "section 0x%x; forgot to initialize global var?.." % (p.name, sym.name,
                                                                                            sym.shndx))
                if sym.shndx == elf.text_shndx and sym.type in ("STT_FUNC", "STT_SECTION"):
                    p.relos[i] = ("subprog_addr", sym.value)
                    continue
                if sym.shndx in (elf.maps_shndx, elf.legacy_maps_shndx):
                    m = next((s for s in self._map_specs if s.sec_idx == sym.shndx and s.sec_offset == sym.value
                              and not s.internal), None)
                    if m is None:
                        raise ObjectError(LIBBPF_ERRNO__RELOC, "prog '%s': map relo failed to find map for section "
                                          "'%s', off %d" % (p.name, elf.section(sym.shndx).name, sym.value))
                    p.relos[i] = ("map", m.name)
                    continue
                m = next((s for s in self._map_specs if s.internal and s.sec_idx == sym.shndx), None)
                if m is None:
                    raise ObjectError(LIBBPF_ERRNO__RELOC, "prog '%s': bad data relo against section '%s'"
                                      % (p.name, elf.section(sym.shndx).name))
                p.relos[i] = ("data", (m.name, sym.value))
        # .maps: the initial slots of program arrays and maps of maps (bpf_object__collect_map_relos)
        for r in elf.relocs.get(elf.maps_shndx, ()) if elf.maps_shndx else ():
            m = next((s for s in self._map_specs if s.sec_idx == elf.maps_shndx and not s.internal
                      and s.sec_offset <= r.offset < s.sec_offset + getattr(s, "def_size", 0)), None)
            if m is None or getattr(m, "values_offset", None) is None:
                raise ObjectError(errno.EINVAL, ".maps relo #%d: cannot find the map it is for" % r.offset)
            slot = (r.offset - m.sec_offset - m.values_offset) // 8
            if slot < 0:
                raise ObjectError(errno.EINVAL, "map '%s': relocation outside its 'values'" % m.name)
            if m.values_kind == "prog":
                target = next((p.name for p in self._all_progs if p.sec_idx == r.sym.shndx
                               and p.sec_insn_off * 8 == r.sym.value and p.name == r.sym.name), None)
            else:
                target = next((s.name for s in self._map_specs if s.sec_idx == r.sym.shndx
                               and s.sec_offset == r.sym.value and not s.internal), None)
            if target is None:
                raise ObjectError(errno.EINVAL, "map '%s': slot %d refers to unknown '%s'" % (m.name, slot, r.sym.name))
            m.init_slots[slot] = target

    # -- global data ---------------------------------------------------------------------------------------
    def section(self, name):
        """The GlobalData of section ``name`` ('.rodata', '.data.counters', ...), or None."""
        for s in self._map_specs:
            if s.internal and s.section == name:
                return GlobalData(self, s)
        return None

    rodata = property(lambda self: self.section(".rodata"))
    data = property(lambda self: self.section(".data"))
    bss = property(lambda self: self.section(".bss"))
    kconfig = property(lambda self: self.section(KCONFIG_SEC))

    @property
    def map_specs(self):
        """{name: MapSpec} of every map, before and after load."""
        return {s.name: s for s in self._map_specs}

    @property
    def program_specs(self):
        """{name: ProgramSpec} of every program (subprograms of .text left out), before and after load."""
        return {p.name: p for p in self._all_progs if not p.is_subprog}

    # -- load -----------------------------------------------------------------------------------------------
    def load(self, sys, kernel_btf=None, pin_root_path=None, log_level=0):
        """bpf_object__load on backend ``sys``: returns self, whose ``programs`` and ``maps`` are now
        Programs and Maps. ``kernel_btf``: the target's BTF (a ``bpfemu.btf.Btf``) for CO-RE and externs;
        by default the emulated kernel's own, or the one the backend's bpf(2) hands out, or this machine's
        /sys/kernel/btf/vmlinux. ``pin_root_path``: where maps pinned by name live (default the backend's
        bpffs, /sys/fs/bpf). ``log_level``: the verifier log level of every program (the log of a refused
        program is fetched anyway)."""
        if self.loaded:
            raise ObjectError(errno.EINVAL, "object '%s' is already loaded" % self.name)
        self.sys = sys
        self._kernel_btf = kernel_btf
        self._pin_root = pin_root_path or getattr(sys, "bpffs", None) or "/sys/fs/bpf"
        self._pinned_here = []
        try:
            self._resolve_externs()
            self._load_btf()
            self._create_maps()
            self._relocate_and_load(log_level)
            self._init_prog_arrays()
        except BaseException:
            self._unload()
            raise
        self.loaded = True
        progs = {}
        for name, fd in self._prog_fds.items():
            spec = self.programs[name]
            pr = Program(sys, fd, name)
            pr.spec = spec
            pr.section = spec.section
            progs[name] = pr
        self._owned_fds = []
        self._pinned_here = []
        self.programs = progs
        self.maps = dict(self._loaded_maps)
        return self

    def _needs_kernel_btf(self):
        if self.externs and any(e.kind in ("ksym", "kfunc") for e in self.externs):
            return True
        if self.btf_ext is not None and any(self.btf_ext.core_relos.values()):
            return True
        return any(p.autoload and p.attach_target and not p.attach_btf_id for p in self.programs.values())

    def _target_btf(self):
        """The kernel BTF of the backend (find_kernel_btf / bpf_object__load_vmlinux_btf)."""
        if self._kernel_btf is not None:
            return self._kernel_btf
        kernel = getattr(self.sys, "kernel", None)
        obj = getattr(kernel, "btf_vmlinux", None)
        if obj is not None and getattr(obj, "btf", None) is not None:
            self._kernel_btf = obj.btf
            return self._kernel_btf
        getter = getattr(self.sys, "kernel_btf", None)
        if callable(getter):
            self._kernel_btf = getter()
            return self._kernel_btf
        from ..btf.vmlinux import vmlinux_btf
        b = vmlinux_btf(fallback=False)
        if b is None:
            raise ObjectError(errno.ESRCH, "the kernel BTF of the target is needed (CO-RE, __ksym or a BTF attach "
                              "target) and none was found: pass kernel_btf=")
        self._kernel_btf = b
        return b

    def _resolve_externs(self):
        """bpf_object__resolve_externs: kfuncs and kernel variables from the kernel BTF, .kconfig values."""
        kc = [e for e in self.externs if e.kind == "kconfig"]
        for e in kc:
            spec = self.maps[internal_map_name(self.name, KCONFIG_SEC)]
            val = self._kconfig_value(e)
            if val is None:
                if not e.weak:
                    raise ObjectError(errno.ESRCH, "extern (kcfg) '%s': value not found" % e.name)
                val = 0
            spec.data[e.kcfg_off:e.kcfg_off + e.kcfg_size] = int(val).to_bytes(e.kcfg_size, "little",
                                                                                  signed=val < 0)
            e.resolved = True
        ks = [e for e in self.externs if e.kind in ("ksym", "kfunc")]
        if not ks:
            return
        kb = self._target_btf()
        for e in ks:
            kind = BU.BTF_KIND_FUNC if e.kind == "kfunc" else BU.BTF_KIND_VAR
            tid = kb.find_by_name_kind(relo_core.essential_name(e.name), kind)
            if tid < 0:
                if e.weak:
                    continue
                raise ObjectError(errno.ESRCH, "extern (%s) '%s': not found in kernel BTF"
                                  % ("func ksym" if e.kind == "kfunc" else "var ksym", e.name))
            if e.kind == "kfunc":
                lt = self.btf.btf().type_by_id(e.btf_id)
                kt = kb.type_by_id(tid)
                if not relo_core.types_are_compat(self.btf.btf(), lt.type, kb, kt.type):
                    raise ObjectError(errno.EINVAL, "extern (func ksym) '%s': func_proto [%d] incompatible with "
                                      "vmlinux [%d]" % (e.name, lt.type, kt.type))
            e.kernel_btf_id = tid
            e.resolved = True

    def _kconfig_value(self, e):
        if e.name == "LINUX_KERNEL_VERSION":
            release = getattr(getattr(self.sys, "kernel", None), "release", None) or os.uname().release
            parts = [int("".join(ch for ch in x if ch.isdigit()) or 0) for x in release.split("-")[0].split(".")[:3]]
            while len(parts) < 3:
                parts.append(0)
            return (parts[0] << 16) | (parts[1] << 8) | min(parts[2], 255)
        if e.name in ("LINUX_HAS_BPF_COOKIE", "LINUX_HAS_SYSCALL_WRAPPER"):
            return 1
        return None

    def _load_btf(self):
        """bpf_object__sanitize_and_load_btf: BTF_LOAD of the fixed-up BTF; a refusal is not fatal."""
        if self.btf is None:
            return
        try:
            self.btf_fd = btf_load(self.sys, self.btf.raw_bytes())
        except BpfError:
            self.btf_fd = None
            if any(p.prog_type in (U.BPF_PROG_TYPE_STRUCT_OPS,) for p in self.programs.values()):
                raise
            return
        self._owned_fds.append(self.btf_fd)

    def _create_maps(self):
        """bpf_object__create_maps: create (or reuse a pinned) map for each spec, fill global data."""
        for s in self._map_specs:
            if not s.autocreate:
                continue
            if s.pinning == LIBBPF_PIN_BY_NAME and s.pin_path is None:
                s.pin_path = "%s/%s" % (self._pin_root.rstrip("/"), s.name)
            m = None
            if s.pin_path:
                m = self._reuse_pinned(s)
            if m is None:
                m = self._create_map(s)
                self._loaded_maps[s.name] = m
                if s.internal:
                    m.update(0, bytes(s.data))
                    if s.libbpf_type in (MAP_RODATA, MAP_KCONFIG):
                        m.freeze()
                if s.pin_path:
                    m.pin(s.pin_path)
                    self._pinned_here.append(m)
            else:
                self._loaded_maps[s.name] = m
        for s in self._map_specs:
            if s.type in MAP_IN_MAP and s.init_slots and s.name in self._loaded_maps:
                outer = self._loaded_maps[s.name]
                for slot, target in sorted(s.init_slots.items()):
                    outer.update(slot, self._loaded_maps[target].fd)

    def _reuse_pinned(self, s):
        """bpf_object__reuse_map: a map already pinned at the spec's path, if compatible (else EINVAL)."""
        try:
            m = Map.from_pin(self.sys, s.pin_path)
        except FileNotFoundError:
            return None
        if (m.type, m.key_size, m.value_size, m.max_entries, m.flags) != (
                s.type, s.key_size, s.value_size, self._max_entries(s), s.map_flags):
            m.close()
            raise ObjectError(errno.EINVAL, "couldn't reuse pinned map at '%s': parameter mismatch" % s.pin_path)
        return m

    def _max_entries(self, s):
        """map_set_def_max_entries: a perf event array of 0 entries gets one per possible CPU."""
        if s.type == U.BPF_MAP_TYPE_PERF_EVENT_ARRAY and not s.max_entries:
            kernel = getattr(self.sys, "kernel", None)
            if kernel is not None and hasattr(kernel, "ncpus"):
                return kernel.ncpus
            from ..host.sysinfo import host_possible_cpus
            return host_possible_cpus() or 1
        return s.max_entries

    def _create_map(self, s, inner_fd=None):
        """bpf_object__create_map: MAP_CREATE with the object's BTF (again without it if refused)."""
        fields = dict(max_entries=self._max_entries(s), flags=s.map_flags, name=s.name[:15] or None,
                      map_extra=s.map_extra)
        if s.numa_node:
            fields["numa_node"] = s.numa_node
        inner = None
        if s.type in MAP_IN_MAP and s.inner is not None:
            inner = self._create_map(s.inner)
            fields["inner_map"] = inner
        btf_fields = {}
        if self.btf_fd is not None and s.type not in NO_BTF_TYPES:
            btf_fields = dict(btf_fd=self.btf_fd, btf_key_type_id=s.btf_key_type_id,
                              btf_value_type_id=s.btf_value_type_id)
        elif self.btf_fd is not None:
            btf_fields = dict(btf_fd=self.btf_fd)
        try:
            try:
                return Map.create(self.sys, s.type, s.key_size, s.value_size, **fields, **btf_fields)
            except BpfError:
                if not (btf_fields.get("btf_key_type_id") or btf_fields.get("btf_value_type_id")):
                    raise
                return Map.create(self.sys, s.type, s.key_size, s.value_size, **fields)
        finally:
            if inner is not None:
                inner.close()

    # -- relocation ------------------------------------------------------------------------------------------
    def _relocate_and_load(self, log_level):
        core_cache = {}
        # CO-RE first, on every function's own copy of its section's instructions (bpf_object__relocate_core)
        work = {p.name: list(p.insns) for p in self._all_progs}
        if self.btf_ext is not None and self.btf is not None:
            local = self.btf.btf()
            for sec_name, recs in self.btf_ext.core_relos.items():
                sec = self.elf.section_by_name(sec_name)
                if sec is None:
                    raise ObjectError(errno.EINVAL, "sec '%s': CO-RE relocations for an unknown section" % sec_name)
                for insn_off, type_id, access_off, kind in recs:
                    idx = insn_off // BPF_INSN_SZ
                    p = self._prog_at(sec.idx, idx)
                    if p is None:
                        continue
                    if not p.is_subprog and not p.autoload:
                        continue
                    access = self.btf.str_at(access_off)
                    if kind == relo_core.TYPE_ID_LOCAL:
                        targ = local
                    else:
                        targ = self._target_btf()
                    res = relo_core.resolve(local, targ, type_id, access, kind, core_cache)
                    relo_core.patch_insn(work[p.name], idx - p.sec_insn_off, res,
                                         "prog '%s': relo #%s" % (p.name, relo_core.KINDS.get(kind, kind)))
        # map, data and extern references (bpf_object__relocate_data)
        for p in self._all_progs:
            insns = work[p.name]
            for i, (kind, arg) in p.relos.items():
                c, d, s_, o, imm = insns[i]
                if kind == "subprog_addr":   # marked for the linker (and the verifier) as a callback address
                    insns[i] = (c, d, BPF_PSEUDO_FUNC, o, imm)
                elif kind == "map":
                    insns[i] = (c, d, BPF_PSEUDO_MAP_FD, o, self._loaded_maps[arg].fd)
                elif kind == "data":
                    mname, sym_off = arg
                    if mname not in self._loaded_maps:
                        raise ObjectError(LIBBPF_ERRNO__RELOC, "prog '%s': data map '%s' was not created"
                                          % (p.name, mname))
                    nxt = insns[i + 1]
                    insns[i + 1] = (nxt[0], nxt[1], nxt[2], nxt[3], _s32(imm + sym_off))
                    insns[i] = (c, d, BPF_PSEUDO_MAP_VALUE, o, self._loaded_maps[mname].fd)
                elif kind == "extern_ld64":
                    ext = arg
                    if ext.kind == "kconfig":
                        spec = self.maps.get(internal_map_name(self.name, KCONFIG_SEC))
                        nxt = insns[i + 1]
                        insns[i + 1] = (nxt[0], nxt[1], nxt[2], nxt[3], ext.kcfg_off)
                        insns[i] = (c, d, BPF_PSEUDO_MAP_VALUE, o, self._loaded_maps[spec.name].fd)
                    elif ext.resolved:
                        nxt = insns[i + 1]
                        insns[i] = (c, d, BPF_PSEUDO_BTF_ID, o, ext.kernel_btf_id)
                        insns[i + 1] = (nxt[0], nxt[1], nxt[2], nxt[3], 0)
                    else:   # an unresolved weak ksym reads as 0
                        nxt = insns[i + 1]
                        insns[i] = (c, d, 0, o, 0)
                        insns[i + 1] = (nxt[0], nxt[1], nxt[2], nxt[3], 0)
                elif kind == "extern_call":
                    ext = arg
                    if ext.resolved:
                        insns[i] = (c, d, BPF_PSEUDO_KFUNC_CALL, 0, ext.kernel_btf_id)
                    else:   # an unresolved weak kfunc: a call the verifier refuses if it is reachable
                        insns[i] = (c, d, BPF_PSEUDO_KFUNC_CALL, 0, 0)
        by_sec_off = {(p.sec_idx, p.sec_insn_off): p for p in self._all_progs}
        for p in self._all_progs:
            if p.is_subprog or not p.autoload:
                continue
            if not p.prog_type:
                raise ObjectError(errno.EINVAL, "prog '%s': missing BPF prog type, check ELF section name '%s'"
                                  % (p.name, p.section))
            insns, func_info, line_info = self._link(p, work, by_sec_off)
            self._load_prog(p, insns, func_info, line_info, log_level)

    def _link(self, main, work, by_sec_off):
        """bpf_object__relocate_calls / bpf_object__reloc_code: the main program with every subprogram it
        reaches appended once (in the order of first call), calls and callback addresses pointed at them,
        and the func_info/line_info of each piece moved along."""
        out = list(work[main.name])
        placed = {main.name: 0}
        pieces = [(main, 0)]
        text = self.elf.text_shndx

        def reloc(prog, base):
            for i in range(prog.sec_insn_cnt):
                insn = out[base + i]
                if not _is_subprog_call(insn) and not _is_pseudo_func(insn):
                    continue
                relo = prog.relos.get(i)
                if relo is not None and relo[0] == "extern_call":
                    continue
                if relo is not None and relo[0] not in ("call", "subprog_addr"):
                    raise ObjectError(LIBBPF_ERRNO__RELOC, "prog '%s': unexpected relo for insn #%d" % (prog.name, i))
                if relo is not None:
                    if relo[0] == "call":
                        sub_idx = relo[1] // BPF_INSN_SZ + insn[4] + 1
                    else:
                        sub_idx = (relo[1] + insn[4]) // BPF_INSN_SZ
                elif _is_pseudo_func(insn):
                    raise ObjectError(LIBBPF_ERRNO__RELOC, "prog '%s': missing subprog addr relo for insn #%d"
                                      % (prog.name, i))
                else:
                    sub_idx = prog.sec_insn_off + i + insn[4] + 1
                sub = by_sec_off.get((text, sub_idx))
                if sub is None:
                    sub = self._prog_at(text, sub_idx) if text else None
                    if sub is None or sub.sec_insn_off != sub_idx:
                        raise ObjectError(LIBBPF_ERRNO__RELOC, "prog '%s': no .text section found yet sub-program "
                                          "call exists" % prog.name)
                if sub.name not in placed:
                    placed[sub.name] = len(out)
                    pieces.append((sub, len(out)))
                    out.extend(work[sub.name])
                    reloc(sub, placed[sub.name])
                c, d, s, o, _imm = out[base + i]
                out[base + i] = (c, d, s, o, placed[sub.name] - (base + i) - 1)

        reloc(main, 0)
        func_info, line_info = self._ext_info(pieces)
        return out, func_info, line_info

    def _ext_info(self, pieces):
        """reloc_prog_func_and_line_info: the records of each piece, insn_off made program-relative."""
        ext = self.btf_ext
        if ext is None or self.btf is None:
            return None, None
        fi, li = [], []
        have_fi = True
        for prog, base in pieces:
            recs = [r for r in ext.func_info.get(prog.section, ())
                    if prog.sec_insn_off <= r[0] // BPF_INSN_SZ < prog.sec_insn_off + prog.sec_insn_cnt]
            if not recs:
                have_fi = False
            fi.extend((r[0] // BPF_INSN_SZ - prog.sec_insn_off + base, r[1]) for r in recs)
            li.extend((r[0] // BPF_INSN_SZ - prog.sec_insn_off + base,) + tuple(r[1:])
                      for r in ext.line_info.get(prog.section, ())
                      if prog.sec_insn_off <= r[0] // BPF_INSN_SZ < prog.sec_insn_off + prog.sec_insn_cnt)
        if not have_fi:
            return None, None   # libbpf drops func_info (and line_info) when a piece has none
        return fi, li

    def _attach_btf_id(self, p):
        if p.attach_btf_id or not p.attach_target:
            return p.attach_btf_id
        name, kind = p.attach_target
        kb = self._target_btf()
        tid = kb.find_by_name_kind(name, BU.BTF_KIND_TYPEDEF if kind == "TYPEDEF" else BU.BTF_KIND_FUNC)
        if tid < 0:
            raise ObjectError(errno.ESRCH, "prog '%s': failed to find kernel BTF type ID of '%s'" % (p.name, name))
        return tid

    def _load_prog(self, p, insns, func_info, line_info, log_level):
        """bpf_object_load_prog: PROG_LOAD with the object's BTF and the program's func/line info."""
        p.loaded_insns, p.func_info, p.line_info = insns, func_info, line_info
        fields = {}
        keep = []
        if self.btf_fd is not None and func_info:
            fb = ctypes.create_string_buffer(b"".join(struct.pack("<II", *r) for r in func_info))
            lb = ctypes.create_string_buffer(b"".join(struct.pack("<IIII", *r) for r in line_info) or b"\0")
            keep += [fb, lb]
            fields.update(prog_btf_fd=self.btf_fd, func_info=ctypes.addressof(fb), func_info_rec_size=8,
                          func_info_cnt=len(func_info))
            if line_info:
                fields.update(line_info=ctypes.addressof(lb), line_info_rec_size=16, line_info_cnt=len(line_info))
        btf_id = self._attach_btf_id(p)
        if btf_id:
            fields["attach_btf_id"] = btf_id
        if p.kern_version:
            fields["kern_version"] = p.kern_version
        pr = Program.load(self.sys, _encode(insns), p.prog_type, license=self.license or "", name=p.name[:15],
                          expected_attach_type=p.expected_attach_type, prog_flags=p.prog_flags,
                          log_level=p.log_level or log_level, **fields)
        del keep
        self._prog_fds[p.name] = pr.fd
        self._owned_fds.append(pr.fd)
        # libbpf binds .rodata to every program it loads (BPF_PROG_BIND_MAP), so tools see it in map_ids
        for s in self._map_specs:
            if s.libbpf_type == MAP_RODATA and s.name in self._loaded_maps and getattr(self, "_bind_ok", True):
                a = U.make_attr(**{"prog_bind_map.prog_fd": pr.fd,
                                   "prog_bind_map.map_fd": self._loaded_maps[s.name].fd})
                try:
                    self.sys.bpf(U.BPF_PROG_BIND_MAP, a)
                except OSError as e:
                    if e.errno != errno.EINVAL:
                        raise
                    self._bind_ok = False   # a kernel without the command: libbpf's feature probe says no

    def _init_prog_arrays(self):
        """bpf_object_init_prog_arrays: the programs of a program array's initial slots."""
        for s in self._map_specs:
            if s.type != U.BPF_MAP_TYPE_PROG_ARRAY or not s.init_slots:
                continue
            m = self._loaded_maps[s.name]
            for slot, pname in sorted(s.init_slots.items()):
                fd = self._prog_fds.get(pname)
                if fd is None:
                    raise ObjectError(errno.EINVAL, "map '%s': slot [%d] points to program '%s', which was not "
                                      "loaded" % (s.name, slot, pname))
                m.update(slot, fd)

    # -- pins and close ---------------------------------------------------------------------------------------
    def pin_maps(self, path):
        """bpf_object__pin_maps: pin every map under directory ``path`` (by name, or its pin path)."""
        self._need_loaded()
        for name, m in self._loaded_maps.items():
            spec = self.map_specs[name]
            target = spec.pin_path or "%s/%s" % (path.rstrip("/"), name)
            if spec.pin_path and m.pin_path:
                continue
            m.pin(target)

    def pin_programs(self, path):
        """bpf_object__pin_programs: pin every program as ``path/<name>``."""
        self._need_loaded()
        for name, pr in self.programs.items():
            pr.pin("%s/%s" % (path.rstrip("/"), name))

    def _need_loaded(self):
        if not self.loaded:
            raise ObjectError(errno.ENOENT, "object '%s' is not loaded" % self.name)

    def _unload(self):
        """A failed load: unpin what it pinned (not the pins it reused), close what it created."""
        for m in self._pinned_here:
            try:
                m.unpin()
            except OSError:
                pass
        self._pinned_here = []
        for m in self._loaded_maps.values():
            try:
                m.close()
            except OSError:
                pass
        self._loaded_maps = {}
        for fd in self._owned_fds:
            try:
                self.sys.close(fd)
            except OSError:
                pass
        self._owned_fds = []
        self._prog_fds = {}
        if self.btf_fd is not None:
            self.btf_fd = None

    def close(self):
        """bpf_object__close: close every fd the object holds (pins stay)."""
        if not self.loaded:
            return
        for pr in self.programs.values():
            pr.close()
        for m in self._loaded_maps.values():
            m.close()
        if self.btf_fd is not None:
            try:
                self.sys.close(self.btf_fd)
            except OSError:
                pass
        self.btf_fd = None
        self.loaded = False
        self.programs = self.program_specs
        self.maps = self.map_specs
        self._loaded_maps = {}
        self._prog_fds = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "<Object %r: %d programs, %d maps%s>" % (self.name, len(self.programs), len(self.maps),
                                                          ", loaded" if self.loaded else "")
