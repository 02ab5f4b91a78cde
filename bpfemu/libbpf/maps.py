"""Map definitions in a BPF object (libbpf's ``bpf_object__init_maps``): what each map is before it exists.

Three sources, each giving :class:`MapSpec` objects:

- **BTF-defined maps** (``SEC(".maps")``): a global variable of an anonymous struct whose members encode the
  definition in their types (``parse_btf_map_def``): ``__uint(name, N)`` is ``int (*name)[N]`` (a pointer to
  an array of N elements: ``type``, ``max_entries``, ``map_flags``, ``numa_node``, ``key_size``,
  ``value_size``, ``pinning``, ``map_extra``), ``__type(name, T)`` is ``T *name`` (``key``, ``value``: the
  size and the BTF type id of T), ``__array(values, struct inner)`` is ``struct inner *values[]`` (the inner
  map of a map-in-map, or a program array's programs, with initial slots from relocations in ``.maps``);
- **legacy maps** (``SEC("maps")``): ``struct bpf_map_def`` records (type, key_size, value_size,
  max_entries, map_flags, then fields libbpf ignores), one per symbol of the section. libbpf 1.0 dropped
  them; bpfemu reads them as libbpf 0.x did, without BTF;
- **global data** (``.data``, ``.rodata``, ``.bss`` and their ``.data.*``/``.rodata.*`` variants): a
  single-element ARRAY whose value is the whole section, named ``<object prefix><section>``
  (``internal_map_name``), ``BPF_F_RDONLY_PROG`` for read-only sections, ``BPF_F_MMAPABLE`` when a
  non-static variable of the section is in the BTF, the section's DATASEC as value type; its initial value
  is the section's bytes (zeros for ``.bss``), and ``.rodata`` is frozen once written.
"""
import errno
import struct

from .. import uapi as U
from ..btf import uapi as BU
from .elf import LIBBPF_ERRNO__FORMAT, ObjectError

LIBBPF_PIN_NONE = 0
LIBBPF_PIN_BY_NAME = 1
BPF_OBJ_NAME_LEN = 16

# libbpf_map_type: where a map came from
MAP_USER, MAP_DATA, MAP_BSS, MAP_RODATA, MAP_KCONFIG = "user", "data", "bss", "rodata", "kconfig"

MAP_IN_MAP = (U.BPF_MAP_TYPE_ARRAY_OF_MAPS, U.BPF_MAP_TYPE_HASH_OF_MAPS)
# map types created without BTF key/value types (bpf_object__create_map)
NO_BTF_TYPES = frozenset((
    U.BPF_MAP_TYPE_PERF_EVENT_ARRAY, U.BPF_MAP_TYPE_CGROUP_ARRAY, U.BPF_MAP_TYPE_STACK_TRACE,
    U.BPF_MAP_TYPE_ARRAY_OF_MAPS, U.BPF_MAP_TYPE_HASH_OF_MAPS, U.BPF_MAP_TYPE_DEVMAP,
    U.BPF_MAP_TYPE_DEVMAP_HASH, U.BPF_MAP_TYPE_CPUMAP, U.BPF_MAP_TYPE_XSKMAP, U.BPF_MAP_TYPE_SOCKMAP,
    U.BPF_MAP_TYPE_SOCKHASH, U.BPF_MAP_TYPE_QUEUE, U.BPF_MAP_TYPE_STACK, U.BPF_MAP_TYPE_ARENA))


class MapSpec:
    """One map of the object, as it will be created: ``name``, ``type``, ``key_size``, ``value_size``,
    ``max_entries``, ``map_flags``, ``numa_node``, ``map_extra``, ``btf_key_type_id``,
    ``btf_value_type_id``, ``pinning``, ``inner`` (the inner map's MapSpec of a map-in-map), ``init_slots``
    ({index: name of a map or program}), ``libbpf_type`` (``'user'``, ``'data'``, ``'rodata'``, ``'bss'``),
    ``section`` (the ELF section name), ``sec_idx``/``sec_offset`` (where relocations find it) and, for
    global data, ``data`` (a bytearray: the initial value, editable until load) and ``datasec_id``.

    Everything may be changed before :meth:`bpfemu.libbpf.Object.load` (``max_entries`` most often)."""

    def __init__(self, name, libbpf_type=MAP_USER):
        self.name = name
        self.real_name = name
        self.libbpf_type = libbpf_type
        self.type = 0
        self.key_size = self.value_size = self.max_entries = self.map_flags = 0
        self.numa_node = 0
        self.map_extra = 0
        self.btf_key_type_id = self.btf_value_type_id = 0
        self.pinning = LIBBPF_PIN_NONE
        self.pin_path = None
        self.inner = None
        self.init_slots = {}
        self.section = ""
        self.sec_idx = 0
        self.sec_offset = 0
        self.data = None
        self.datasec_id = 0
        self.autocreate = True

    @property
    def internal(self):
        return self.libbpf_type != MAP_USER

    def __repr__(self):
        return "<MapSpec %r %s key %d value %d max_entries %d flags %#x>" % (
            self.name, U.map_type_name(self.type) if self.type else "unspec", self.key_size, self.value_size,
            self.max_entries, self.map_flags)


def _field_int(btf, name, m, map_name):
    """get_map_field_int: ``int (*name)[N]`` -> N."""
    t, _ = btf.skip_modifiers(m[1])
    if t is None or t.kind != BU.BTF_KIND_PTR:
        raise ObjectError(errno.EINVAL, "map '%s': attr '%s': expected PTR" % (map_name, name))
    arr = btf.type_by_id(t.type)
    if arr is None or arr.kind != BU.BTF_KIND_ARRAY:
        raise ObjectError(errno.EINVAL, "map '%s': attr '%s': type [%d] is not an array" % (map_name, name, t.type))
    return arr.array[2]


def parse_btf_map_def(btf, map_name, def_t, is_inner=False):
    """parse_btf_map_def: a MapSpec (without name placement) from the definition struct ``def_t``; the
    inner map's spec of a map-in-map in ``.inner``; ``values_offset``: the byte offset of the ``values``
    member (for initial slots), or None."""
    spec = MapSpec(map_name)
    spec.values_offset = None
    spec.values_kind = None
    members = def_t.members
    for i, m in enumerate(members):
        name = (btf.str_by_offset(m[0]) or b"").decode("latin-1")
        if not name:
            raise ObjectError(errno.EINVAL, "map '%s': invalid field #%d" % (map_name, i))
        if name in ("type", "max_entries", "map_flags", "numa_node", "pinning"):
            v = _field_int(btf, name, m, map_name)
            if name == "type":
                spec.type = v
            elif name == "max_entries":
                spec.max_entries = v
            elif name == "map_flags":
                spec.map_flags = v
            elif name == "numa_node":
                spec.numa_node = v
            else:
                if is_inner:
                    raise ObjectError(errno.EINVAL, "map '%s': inner def can't be pinned" % map_name)
                if v not in (LIBBPF_PIN_NONE, LIBBPF_PIN_BY_NAME):
                    raise ObjectError(errno.EINVAL, "map '%s': invalid pinning value %d" % (map_name, v))
                spec.pinning = v
        elif name == "map_extra":
            spec.map_extra = _field_int(btf, name, m, map_name)
        elif name in ("key_size", "value_size"):
            v = _field_int(btf, name, m, map_name)
            cur = getattr(spec, name)
            if cur and cur != v:
                raise ObjectError(errno.EINVAL, "map '%s': conflicting %s %d != %d" % (map_name, name, cur, v))
            setattr(spec, name, v)
        elif name in ("key", "value"):
            t = btf.type_by_id(m[1])
            if t is None or t.kind != BU.BTF_KIND_PTR:
                raise ObjectError(errno.EINVAL, "map '%s': %s spec is not PTR" % (map_name, name))
            r = btf.resolve_size(t.type)
            if r is None:
                raise ObjectError(errno.EINVAL, "map '%s': can't determine %s size for type [%d]"
                                  % (map_name, name, t.type))
            size_attr = name + "_size"
            cur = getattr(spec, size_attr)
            if cur and cur != r[1]:
                raise ObjectError(errno.EINVAL, "map '%s': conflicting %s size %d != %d"
                                  % (map_name, name, cur, r[1]))
            setattr(spec, size_attr, r[1])
            setattr(spec, "btf_%s_type_id" % name, t.type)
        elif name == "values":
            is_mim = spec.type in MAP_IN_MAP
            is_pa = spec.type == U.BPF_MAP_TYPE_PROG_ARRAY
            if is_inner:
                raise ObjectError(errno.ENOTSUP, "map '%s': multi-level inner maps not supported" % map_name)
            if i != len(members) - 1:
                raise ObjectError(errno.EINVAL, "map '%s': 'values' member should be last" % map_name)
            if not is_mim and not is_pa:
                raise ObjectError(errno.ENOTSUP, "map '%s': should be map-in-map or prog-array" % map_name)
            if spec.value_size and spec.value_size != 4:
                raise ObjectError(errno.EINVAL, "map '%s': conflicting value size %d != 4"
                                  % (map_name, spec.value_size))
            spec.value_size = 4
            arr = btf.type_by_id(m[1])
            if arr is None or arr.kind != BU.BTF_KIND_ARRAY or arr.array[2]:
                raise ObjectError(errno.EINVAL, "map '%s': values spec is not a zero-sized array" % map_name)
            pt, _ = btf.skip_modifiers(arr.array[0])
            if pt is None or pt.kind != BU.BTF_KIND_PTR:
                raise ObjectError(errno.EINVAL, "map '%s': values def is not a pointer" % map_name)
            inner_t, _ = btf.skip_modifiers(pt.type)
            spec.values_offset = (m[2] & 0xFFFFFF if def_t.kflag else m[2]) // 8
            if is_pa:
                if inner_t is None or inner_t.kind != BU.BTF_KIND_FUNC_PROTO:
                    raise ObjectError(errno.EINVAL, "map '%s': prog-array value def is not a function" % map_name)
                spec.values_kind = "prog"
                continue
            if inner_t is None or inner_t.kind != BU.BTF_KIND_STRUCT:
                raise ObjectError(errno.EINVAL, "map '%s': map-in-map inner def is not a struct" % map_name)
            spec.inner = parse_btf_map_def(btf, map_name + ".inner", inner_t, is_inner=True)
            spec.values_kind = "map"
        # unknown fields are ignored (libbpf's non-strict mode)
    if not spec.type:
        raise ObjectError(errno.EINVAL, "map '%s': map type isn't specified" % map_name)
    return spec


def btf_defined_maps(elf, btf):
    """bpf_object__init_user_btf_maps: the MapSpecs of the ``.maps`` DATASEC, in its order."""
    out = []
    if not elf.maps_shndx:
        return out
    if btf is None:
        raise ObjectError(errno.EINVAL, "BTF is required for the maps of SEC(\".maps\"), but the object has none")
    sec = elf.section(elf.maps_shndx)
    ds = None
    for tid in range(1, btf.nr_types_total()):
        t = btf.type_by_id(tid)
        if t.kind == BU.BTF_KIND_DATASEC and btf.str_by_offset(t.name_off) == b".maps":
            ds = t
            break
    if ds is None:
        raise ObjectError(errno.EINVAL, "DATASEC '.maps' not found")
    for vi, (var_id, off, size) in enumerate(ds.vsis):
        var = btf.type_by_id(var_id)
        name = (btf.str_by_offset(var.name_off) or b"").decode("latin-1")
        if not name:
            raise ObjectError(errno.EINVAL, "map #%d: empty name" % vi)
        if off + size > sec.size:
            raise ObjectError(errno.EINVAL, "map '%s' BTF data is corrupted" % name)
        if var.kind != BU.BTF_KIND_VAR:
            raise ObjectError(errno.EINVAL, "map '%s': unexpected var kind %s" % (name, BU.KIND_STR[var.kind]))
        if var.linkage != BU.BTF_VAR_GLOBAL_ALLOCATED:
            raise ObjectError(errno.EOPNOTSUPP, "map '%s': unsupported map linkage" % name)
        def_t, _ = btf.skip_modifiers(var.type)
        if def_t is None or def_t.kind != BU.BTF_KIND_STRUCT:
            raise ObjectError(errno.EINVAL, "map '%s': unexpected def kind" % name)
        if def_t.size > size:
            raise ObjectError(errno.EINVAL, "map '%s': invalid def size" % name)
        spec = parse_btf_map_def(btf, name, def_t)
        spec.section = ".maps"
        spec.sec_idx = elf.maps_shndx
        spec.sec_offset = off
        spec.def_size = size
        if spec.inner is not None:
            spec.inner.sec_idx = elf.maps_shndx
        out.append(spec)
    return out


def legacy_maps(elf):
    """The maps of a legacy ``maps`` section: ``struct bpf_map_def`` per symbol (as libbpf 0.x read them)."""
    out = []
    if not elf.legacy_maps_shndx:
        return out
    sec = elf.section(elf.legacy_maps_shndx)
    syms = [s for s in elf.symbols_in(sec.idx) if s.type in ("STT_OBJECT", "STT_NOTYPE") and s.name
            and s.bind in ("STB_GLOBAL", "STB_LOCAL", "STB_WEAK") and not s.name.startswith(".")]
    syms = [s for s in syms if s.type == "STT_OBJECT" or s.bind != "STB_LOCAL"]
    if not syms:
        return out
    def_size = sec.size // len(syms)
    if def_size < 20 or sec.size % len(syms):
        raise ObjectError(LIBBPF_ERRNO__FORMAT, "unable to determine legacy map definition size in section "
                          "'maps', %d maps in %d bytes" % (len(syms), sec.size))
    for s in syms:
        if s.value + def_size > sec.size:
            raise ObjectError(LIBBPF_ERRNO__FORMAT, "corrupted maps section in %s" % elf.path)
        raw = sec.data[s.value:s.value + def_size]
        if any(raw[20:]):
            raise ObjectError(errno.EINVAL, "map '%s': unknown nonzero fields in its bpf_map_def" % s.name)
        spec = MapSpec(s.name)
        spec.type, spec.key_size, spec.value_size, spec.max_entries, spec.map_flags = struct.unpack_from(
            "<IIIII", raw)
        spec.section = "maps"
        spec.sec_idx = sec.idx
        spec.sec_offset = s.value
        out.append(spec)
    return out


def internal_map_name(obj_name, real_name):
    """internal_map_name: '<up to 8 chars of the object name><section>' for .data/.rodata/.bss (the section
    name given at least 7 characters of room), the section name alone for '.data.foo'-style sections; at
    most 15 characters, anything but alphanumerics, '_' and '.' turned into '_'."""
    sfx_len = min(max(7, len(real_name)), BPF_OBJ_NAME_LEN - 1)
    if "." in real_name[1:]:
        pfx_len = 0
    else:
        pfx_len = min(BPF_OBJ_NAME_LEN - sfx_len - 1, len(obj_name))
    name = (obj_name[:pfx_len] + real_name[:sfx_len])[:BPF_OBJ_NAME_LEN - 1]
    return "".join(c if c.isalnum() or c in "_." else "_" for c in name)


def global_data_maps(elf, btf, obj_name):
    """bpf_object__init_global_data_maps: one MapSpec per nonempty data section."""
    out = []
    for kind, sec in elf.data_sections:
        spec = MapSpec(internal_map_name(obj_name, sec.name), kind)
        spec.real_name = sec.name
        spec.type = U.BPF_MAP_TYPE_ARRAY
        spec.key_size = 4
        spec.value_size = sec.size
        spec.max_entries = 1
        spec.map_flags = U.BPF_F_RDONLY_PROG if kind == MAP_RODATA else 0
        spec.section = sec.name
        spec.sec_idx = sec.idx
        spec.data = bytearray(sec.data if kind != MAP_BSS else bytes(sec.size))
        if btf is not None:
            for tid in range(1, btf.nr_types_total()):
                t = btf.type_by_id(tid)
                if t.kind == BU.BTF_KIND_DATASEC and btf.str_by_offset(t.name_off) == sec.name.encode("latin-1"):
                    spec.btf_value_type_id = spec.datasec_id = tid
                    break
            if spec.datasec_id and _has_non_static_var(btf, btf.type_by_id(spec.datasec_id)):
                spec.map_flags |= U.BPF_F_MMAPABLE
        out.append(spec)
    return out


def _has_non_static_var(btf, ds):
    """map_is_mmapable: a DATASEC with at least one non-static VAR."""
    for var_id, _off, _size in ds.vsis:
        v = btf.type_by_id(var_id)
        if v.kind == BU.BTF_KIND_VAR and v.linkage != BU.BTF_VAR_STATIC:
            return True
    return False


def adjust_ringbuf_size(sz, page_size=4096):
    """adjust_ringbuf_sz: a ring buffer's max_entries rounded up to a power-of-2 multiple of the page size."""
    if not sz:
        return 0
    mul = 1
    while mul <= 0xffffffff // page_size:
        if mul * page_size >= sz:
            return mul * page_size
        mul <<= 1
    return sz
