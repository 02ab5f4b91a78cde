"""struct bpf_prog: a loaded program (include/linux/bpf.h, kernel/bpf/core.c).

A :class:`BpfProg` holds what PROG_LOAD established and what OBJ_GET_INFO_BY_FD and the interpreter read:
type and expected attach type, the instructions as loaded (``insns``) and as the kernel keeps them after
verification (``xlated``: ld_imm64 map fds replaced, pseudo markers cleared), the tag, the maps it holds,
name, GPL compatibility, verified instruction count and stack depth.
"""
import hashlib
import struct

from ..objects import BpfObject
from . import funcs  # noqa: F401  (links the helper implementations to their prototypes)
from .core import Image, NotEmulated
from .insn import BPF_DW, BPF_IMM, BPF_LD, BPF_PSEUDO_FUNC, BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE, Insn
from .jit import bpf_int_jit_compile
from .memory import M32

BPF_TAG_SIZE = 8
PAGE_SIZE = 4096
BPF_PROG_HDR = 96   # offsetof(struct bpf_prog, insns) on x86_64: memlock is 4096 up to 500 instructions
_PACK = struct.Struct("<BBhi")


def pack_insns(insns):
    return b"".join(_PACK.pack(c, (d & 0xf) | ((s & 0xf) << 4), o, i) for c, d, s, o, i in insns)


def bpf_prog_calc_tag(insns, hash_name="sha256"):
    """The program tag: the first 8 bytes of ``hash_name`` (a profile's ``prog_tag``: "sha256" as 6.18 computes
    it, "sha1" before) over the instructions with the map fds of ``BPF_PSEUDO_MAP_FD``/``BPF_PSEUDO_MAP_VALUE``
    loads zeroed (both halves' imm)."""
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
    return hashlib.new(hash_name, pack_insns(out)).digest()[:BPF_TAG_SIZE]


class BpfProg(BpfObject):
    """struct bpf_prog + bpf_prog_aux. ``maps`` are the map objects the program uses (held while it lives).

    It becomes a kernel object (an id, fds, pins) once :meth:`publish` hands it to a kernel."""

    kind = "prog"

    def __init__(self, prog_type, expected_attach_type, insns, name=b"", gpl_compatible=False, sleepable=False,
                 tag_hash="sha256"):
        BpfObject.__init__(self, None)
        self.type = prog_type
        self.expected_attach_type = expected_attach_type
        self.insns = list(insns)
        self.xlated = list(insns)
        self.tag = bpf_prog_calc_tag(self.insns, tag_hash)
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
        self.max_ctx_offset = 0     # aux->max_ctx_offset: the end of the furthest context access
        self.helper_protos = {}     # helper id -> the FuncProto the verifier chose for this program's type
        self.helpers = {}           # helper id -> implementation (bpf_prog_select_runtime)
        self.image = None           # the bpfemu.prog.core.Image it runs
        self.streams = {1: bytearray(), 2: bytearray()}  # BPF_STDOUT, BPF_STDERR (bpf_prog_stream_read)
        self.bound_maps = []        # maps held through BPF_PROG_BIND_MAP
        self.btf_obj = None         # aux->btf: the BTF object of prog_btf_fd, held while the program lives
        self.func_info = []         # aux->func_info: [(insn_off, type_id)]
        self.line_info = []         # aux->linfo: [(insn_off, file_name_off, line_off, line_col)]

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

    def held_objects(self):
        return list(self.maps)

    def common_refs(self):
        """The program's BTF (aux->btf), released after the maps when the program is freed."""
        return [self.btf_obj] if self.btf_obj is not None else []

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

    header_size = BPF_PROG_HDR  # offsetof(struct bpf_prog, insns) in the kernel version (its profile's sizeof)

    @property
    def memlock(self):
        """bpf_prog_size(len) rounded up to pages: what fdinfo's memlock shows."""
        n = self.header_size + 8 * len(self.insns)
        return (n + PAGE_SIZE - 1) // PAGE_SIZE * PAGE_SIZE

    def show_fdinfo(self):
        """bpf_prog_show_fdinfo: prog_jited is 1 when the translator took the program (bpfemu.prog.jit, the
        emulator's JIT), as on a host with its JIT on."""
        jited = "1" if self.image is not None and self.image.bpf_func is not None else "0"
        return [("prog_type", str(self.type)), ("prog_jited", jited), ("prog_tag", self.tag.hex()),
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


# ---- bpf_prog_select_runtime ---------------------------------------------------------------------------------

BPF_PSEUDO_MAP_IDX, BPF_PSEUDO_MAP_IDX_VALUE = 5, 6


def _unimplemented(proto):
    def fn(run, r1, r2, r3, r4, r5):
        raise NotEmulated("helper %s is not implemented by bpfemu" % proto.func)
    return fn


def _map_value_resolver(m, off):
    def resolve(run):
        where = m.value_region(b"\0\0\0\0", 0)  # map_direct_value_addr: the first (only) element
        if where is None:
            raise NotEmulated("direct value access to a %s map" % m.type_name())
        return run.map_value_addr(m, where) + off
    return resolve


def bpf_prog_select_runtime(prog, jit=True):
    """bpf_prog_select_runtime (kernel/bpf/core.c): make ``prog.image``, the :class:`Image` a verified
    program runs, and ``prog.helpers``, what its helper calls dispatch to; translate it when ``jit``.

    ``prog`` gives ``insns``, ``type``, ``name``, ``insn_maps`` (ld_imm64 index -> map) and
    ``helper_protos`` (helper id -> the :class:`~bpfemu.prog.helpers.FuncProto` the verifier chose for the
    program's type). Each pseudo ``ld_imm64`` resolves per run: a map to its address, a map value to the
    address of the map's own storage, a subprogram to its callback address; a kernel symbol is not
    modelled (the run fails with EINVAL at that instruction).
    """
    image = Image([Insn(*i) for i in prog.insns], name=prog.name.decode("latin-1", "replace"), prog_type=prog.type)
    pseudo = {}
    insns = image.insns
    for i, ins in enumerate(insns):
        if ins.code != BPF_LD | BPF_IMM | BPF_DW or not ins.src_reg or i + 1 >= len(insns):
            continue
        src = ins.src_reg
        if src in (BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_IDX):
            pseudo[i] = (lambda run, m=prog.insn_maps[i]: run.object_addr(m))
        elif src in (BPF_PSEUDO_MAP_VALUE, BPF_PSEUDO_MAP_IDX_VALUE):
            pseudo[i] = _map_value_resolver(prog.insn_maps[i], insns[i + 1].imm & M32)
        elif src == BPF_PSEUDO_FUNC:
            pseudo[i] = (lambda run, t=i + ins.imm + 1: run.func_addr(image, t))
        else:
            def unresolved(run, i=i):
                raise NotEmulated("ld_imm64 of a kernel symbol (pseudo BTF id) at insn %d" % i)
            pseudo[i] = unresolved
    image.pseudo = pseudo
    prog.helpers = {fid: (p.impl or _unimplemented(p)) for fid, p in prog.helper_protos.items()}
    prog.image = image
    if jit:
        bpf_int_jit_compile(image)
    return image
