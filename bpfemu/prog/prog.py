"""struct bpf_prog: a loaded program (include/linux/bpf.h, kernel/bpf/core.c).

A :class:`BpfProg` holds what PROG_LOAD established and what OBJ_GET_INFO_BY_FD and the interpreter read:
type and expected attach type, the instructions as loaded (``insns``) and as the kernel keeps them after
verification (``xlated``: ld_imm64 map fds replaced, pseudo markers cleared), the tag, the maps it holds,
name, GPL compatibility, verified instruction count and stack depth.
"""
import hashlib
import struct

from ..objects import BpfObject
from .insn import BPF_PSEUDO_FUNC, BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE

BPF_TAG_SIZE = 8
PAGE_SIZE = 4096
BPF_PROG_HDR = 96   # offsetof(struct bpf_prog, insns) on x86_64: memlock is 4096 up to 500 instructions
_PACK = struct.Struct("<BBhi")


def pack_insns(insns):
    return b"".join(_PACK.pack(c, (d & 0xf) | ((s & 0xf) << 4), o, i) for c, d, s, o, i in insns)


def bpf_prog_calc_tag(insns):
    """The program tag: the first 8 bytes of SHA-256 over the instructions with the map fds of
    ``BPF_PSEUDO_MAP_FD``/``BPF_PSEUDO_MAP_VALUE`` loads zeroed (both halves' imm), as 6.18 computes it
    (earlier kernels used SHA-1)."""
    out = []
    was_ld_map = False
    for c, d, s, o, i in insns:
        if not was_ld_map and c == 0x18 and s in (BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE):
            was_ld_map = True
            i = 0
        elif was_ld_map and c == 0 and d == 0 and s == 0 and o == 0:
            was_ld_map = False
            i = 0
        else:
            was_ld_map = False
        out.append((c, d, s, o, i))
    return hashlib.sha256(pack_insns(out)).digest()[:BPF_TAG_SIZE]


class BpfProg(BpfObject):
    """struct bpf_prog + bpf_prog_aux. ``maps`` are the map objects the program uses (held while it lives).

    It becomes a kernel object (an id, fds, pins) once :meth:`publish` hands it to a kernel."""

    kind = "prog"

    def __init__(self, prog_type, expected_attach_type, insns, name=b"", gpl_compatible=False, sleepable=False):
        BpfObject.__init__(self, None)
        self.type = prog_type
        self.expected_attach_type = expected_attach_type
        self.insns = list(insns)
        self.xlated = list(insns)
        self.tag = bpf_prog_calc_tag(self.insns)
        self.name = name
        self.gpl_compatible = gpl_compatible
        self.sleepable = sleepable
        self.maps = []
        self.insn_maps = {}   # ld_imm64 index -> the map it loads
        self.verified_insns = 0
        self.stack_depth = []
        self.load_time = 0
        self.created_by_uid = 0
        self.attach_btf_id = 0
        self.kern_version = 0
        self.prog_flags = 0
        self.enforce_expected_attach_type = False
        self.btf_obj = None      # prog->aux->btf: the program's BTF object (func_info/line_info)
        self.func_info = []      # [(insn_off, type_id)]
        self.line_info = []      # [(insn_off, file_name_off, line_off, line_col)]

    @property
    def len(self):
        return len(self.insns)

    # -- the object ---------------------------------------------------------------------------------
    def publish(self, kernel):
        """bpf_prog_alloc_id and the references on the maps it uses (bpf_prog_load's last steps)."""
        self.kernel = kernel
        for m in self.maps:
            m.hold(self)
        if self.btf_obj is not None:
            self.btf_obj.hold(self)
        kernel.register(self)

    def on_free(self):
        maps, self.maps = self.maps, []
        for m in maps:
            m.release(self)
        b, self.btf_obj = self.btf_obj, None
        if b is not None:
            b.release(self)

    def held_objects(self):
        return list(self.maps) + ([self.btf_obj] if self.btf_obj is not None else [])

    def map_compatible(self, m):
        """bpf_prog_map_compatible: the first program a PROG_ARRAY (or a map used with tail calls) meets
        becomes its owner (type, JIT, xdp frags, attach type for program arrays); others must match it."""
        owner = (self.type, True, self.xdp_has_frags, self.expected_attach_type)
        cur = getattr(m, "prog_owner", None)
        if cur is None:
            m.prog_owner = owner
            return True
        if cur[:3] != owner[:3]:
            return False
        return not (m.map_type == 3 and cur[3] != owner[3])   # BPF_MAP_TYPE_PROG_ARRAY

    xdp_has_frags = False

    @property
    def memlock(self):
        """bpf_prog_size(len) rounded up to pages: what fdinfo's memlock shows."""
        n = BPF_PROG_HDR + 8 * len(self.insns)
        return (n + PAGE_SIZE - 1) // PAGE_SIZE * PAGE_SIZE

    def show_fdinfo(self):
        """bpf_prog_show_fdinfo. The emulator has no JIT but reports prog_jited 1, as the host (JIT on) does."""
        return [("prog_type", str(self.type)), ("prog_jited", "1"), ("prog_tag", self.tag.hex()),
                ("memlock", str(self.memlock)), ("prog_id", str(self.id)), ("run_time_ns", str(self.run_time_ns)),
                ("run_cnt", str(self.run_cnt)), ("recursion_misses", "0"),
                ("verified_insns", str(self.verified_insns))]

    run_time_ns = 0
    run_cnt = 0

    def convert_pseudo_ld_imm64(self, map_addr):
        """The xlated program: ld_imm64 of a map fd (or of a map value) loads the map's address, and the
        pseudo markers are cleared (convert_pseudo_ld_imm64). ``map_addr(map, off)`` gives the address."""
        out = list(self.insns)
        i = 0
        while i < len(out):
            c, d, s, o, imm = out[i]
            if c == 0x18 and i + 1 < len(out):
                if s in (1, 2, 5, 6):  # MAP_FD, MAP_VALUE, MAP_IDX, MAP_IDX_VALUE
                    addr = map_addr(self, i)
                    out[i] = (c, d, 0, o, _s32(addr & 0xffffffff))
                    n = out[i + 1]
                    out[i + 1] = (n[0], n[1], n[2], n[3], _s32(addr >> 32))
                elif s != BPF_PSEUDO_FUNC and s:
                    out[i] = (c, d, 0, o, imm)
                i += 2
                continue
            i += 1
        self.xlated = out
        return out


def _s32(v):
    v &= 0xffffffff
    return v - (1 << 32) if v >> 31 else v
