"""The rewrites bpf_check() makes to a verified program before it runs, as far as this model can make them:
what OBJ_GET_INFO_BY_FD's ``xlated_prog_insns`` shows (kernel/bpf/verifier.c: ``opt_hard_wire_dead_code_branches``,
``opt_remove_dead_code``, ``opt_remove_nops``, ``sanitize_dead_code``, ``convert_ctx_accesses``,
``do_misc_fixups``; the branch adjustments of ``bpf_patch_insn_single``/``bpf_remove_insns`` in
kernel/bpf/core.c).

:func:`rewrite` takes the loaded instructions (5-tuples ``(code, dst, src, off, imm)``) and the indices the
walk reached on a non-speculative path, and returns ``(insns, where)``: the rewritten program and, for each
loaded instruction, its index in it (a removed instruction maps to the one that took its place).

- A program loaded with CAP_BPF loses its dead code: a conditional jump one of whose sides was never
  reached becomes ``goto`` (or a ``goto +0``), unreached instructions go, then every ``goto +0``.
  Without CAP_BPF, each unreached instruction becomes ``goto -1`` instead.
- Context accesses of the socket-buffer types (``__sk_buff``: len, protocol, mark, priority, hash, cb,
  data, data_end, data_meta, ifindex, pkt_type, vlan fields, ...) and of XDP (``xdp_md``) become accesses of
  the kernel's ``sk_buff``/``xdp_buff`` at the offsets of the kernel version's profile
  (``Profile.kernel_offsets``, measured in each version's BTF; :func:`ctx_converter`).
- bpf_map_lookup_elem of an array or a hash map is inlined (:func:`map_gen_lookup`); LD_ABS/LD_IND become a
  call and a check (:func:`gen_ld_abs`). Calls to kernel functions have immediate 0 (on the host: an
  address).
- A tc, lwt_xmit or sk_skb program that writes packet data starts with the unclone prologue
  (:func:`unclone_prologue`).
- A bpf2bpf call shows its offset in ``off`` and the callee's number in ``imm`` (:func:`dump_subprog_calls`).
- Division and modulo by a register get the guards that make division by zero (and, for the signed forms,
  by -1) defined; a signed division or modulo by the constant -1 becomes a negation or a zeroing move.

Not modelled (machine-dependent, or not done yet): helper call immediates (the host: addresses relative to
``__bpf_call_base``; here the helper id stays), narrow context loads, the context of the other program
types, inlined helpers (``bpf_get_smp_processor_id``,
``bpf_loop``, ...), the other maps' lookups, tail call sequences, may_goto expansion, Spectre masking and
nospec barriers, zero extension.
"""
from .insn import (BPF_ALU, BPF_ALU64, BPF_CALL, BPF_DIV, BPF_EXIT, BPF_JA, BPF_JEQ, BPF_JGT, BPF_JMP, BPF_JMP32,
                   BPF_JNE, BPF_K, BPF_MOD, BPF_MOV, BPF_NEG, BPF_PSEUDO_CALL, BPF_PSEUDO_FUNC, BPF_X, BPF_ADD,
                   BPF_XOR)

BPF_REG_AX = 11
_NOP = (BPF_JMP | BPF_JA, 0, 0, 0, 0)
_LD_IMM64 = 0x18


def _is_cond_jump(code):
    cls, op = code & 7, code & 0xf0
    if cls == BPF_JMP32:
        return op != BPF_JA
    return cls == BPF_JMP and op not in (BPF_JA, BPF_EXIT, BPF_CALL)


def _target(insns, i):
    """The index a jump, a bpf2bpf call or a ld_imm64 of a function at ``i`` refers to, or None."""
    code, _d, src, off, imm = insns[i]
    cls, op = code & 7, code & 0xf0
    if cls in (BPF_JMP, BPF_JMP32):
        if op == BPF_EXIT:
            return None
        if op == BPF_CALL:
            return i + imm + 1 if cls == BPF_JMP and src == BPF_PSEUDO_CALL else None
        if cls == BPF_JMP32 and op == BPF_JA:
            return i + imm + 1           # gotol
        return i + off + 1
    if code == _LD_IMM64 and src == BPF_PSEUDO_FUNC:
        return i + imm + 1
    return None


def _retarget(insn, at, to):
    """``insn`` (now at ``at``) made to refer to ``to``."""
    code, dst, src, off, imm = insn
    rel = to - at - 1
    cls, op = code & 7, code & 0xf0
    if (cls == BPF_JMP and op == BPF_CALL) or code == _LD_IMM64 or (cls == BPF_JMP32 and op == BPF_JA):
        return (code, dst, src, off, rel)
    return (code, dst, src, rel, imm)


def _rebuild(insns, pieces):
    """``pieces[i]``: what replaces instruction i (a list, empty to remove it; the original may be in it).
    Jumps, calls and function loads of the original instructions are adjusted; the instructions of a patch
    keep their own offsets. Returns (insns, where, origin): ``where[i]`` the new index of instruction i (of
    what took its place when it went), ``origin[k]`` the instruction the new k-th one comes from."""
    where, pos = [], 0
    for p in pieces:
        where.append(pos)
        pos += len(p)
    where.append(pos)
    out, origin = [], []
    for i, p in enumerate(pieces):
        for k, ins in enumerate(p):
            if ins is insns[i]:
                t = _target(insns, i)
                if t is not None:
                    ins = _retarget(ins, len(out), where[t])
            out.append(ins)
            origin.append(i)
    return out, where[:-1], origin


def _div_guard(insn):
    """do_misc_fixups' patch for a division or modulo, or None."""
    code, dst, src, off, imm = insn
    cls, op, srcm = code & 7, code & 0xf0, code & 0x08
    if cls not in (BPF_ALU, BPF_ALU64) or op not in (BPF_DIV, BPF_MOD):
        return None
    is64 = cls == BPF_ALU64
    jcls = BPF_JMP if is64 else BPF_JMP32
    isdiv = op == BPF_DIV
    if srcm == BPF_K:
        if off == 1 and imm == -1:
            return [(cls | BPF_NEG | BPF_K, dst, 0, 0, 0)] if isdiv else [(BPF_ALU | BPF_MOV | BPF_K, dst, 0, 0, 0)]
        return None
    mov32 = (BPF_ALU | BPF_MOV | BPF_X, dst, dst, 0, 0)
    ja1 = (BPF_JMP | BPF_JA, 0, 0, 1, 0)
    if off != 1:
        if isdiv:   # x / 0 = 0
            return [(jcls | BPF_JNE | BPF_K, src, 0, 2, 0), (BPF_ALU | BPF_XOR | BPF_X, dst, dst, 0, 0), ja1, insn]
        # x % 0 = x (its low half for the 32-bit form)
        p = [(jcls | BPF_JEQ | BPF_K, src, 0, 1 + (0 if is64 else 1), 0), insn, ja1, mov32]
        return p[:2] if is64 else p
    ax = [(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_AX, src, 0, 0), (cls | BPF_ADD | BPF_K, BPF_REG_AX, 0, 0, 1)]
    if isdiv:   # x s/ 0 = 0, x s/ -1 = -x
        return ax + [(jcls | BPF_JGT | BPF_K, BPF_REG_AX, 0, 4, 1), (jcls | BPF_JEQ | BPF_K, BPF_REG_AX, 0, 1, 0),
                     (cls | BPF_MOV | BPF_K, dst, 0, 0, 0), (cls | BPF_NEG | BPF_K, dst, 0, 0, 0), ja1, insn]
    # x s% 0 = x, x s% -1 = 0
    p = ax + [(jcls | BPF_JGT | BPF_K, BPF_REG_AX, 0, 3, 1),
              (jcls | BPF_JEQ | BPF_K, BPF_REG_AX, 0, 3 + (0 if is64 else 1), 1),
              (BPF_ALU | BPF_MOV | BPF_K, dst, 0, 0, 0), ja1, insn, ja1, mov32]
    return p[:-2] if is64 else p


def rewrite(insns, seen, bpf_capable=True, patch=None):
    """The program as the kernel keeps it after verification (see the module docstring).

    ``insns``: the loaded program; ``seen``: indices reached on a non-speculative path (the second half of a
    ld_imm64 goes with its first); ``bpf_capable``: the loader had CAP_BPF; ``patch(idx, insn)``: what
    replaces loaded instruction ``idx`` (now ``insn``) in convert_ctx_accesses or do_misc_fixups (a list of
    instructions), or None (see :func:`patcher`). Returns ``(insns, where)``."""
    insns = [tuple(i) for i in insns]
    n = len(insns)
    seen = set(seen)
    for i in range(n - 1):
        if i in seen and insns[i][0] == _LD_IMM64:
            seen.add(i + 1)
    where = list(range(n))
    orig = list(range(n))

    def step(pieces):
        nonlocal insns, where, orig
        insns, w, o = _rebuild(insns, pieces)
        where = [w[x] if x < len(w) else len(insns) for x in where]
        orig = [orig[k] for k in o]

    if bpf_capable:
        # opt_hard_wire_dead_code_branches
        for i in range(n):
            code, _d, _s, off, _imm = insns[i]
            if i not in seen or not _is_cond_jump(code):
                continue
            if i + 1 not in seen:
                insns[i] = (BPF_JMP | BPF_JA, 0, 0, off, 0)
            elif i + 1 + off not in seen:
                insns[i] = _NOP
        # opt_remove_dead_code, then opt_remove_nops
        step([[ins] if i in seen else [] for i, ins in enumerate(insns)])
        step([[] if ins == _NOP else [ins] for ins in insns])
    else:
        # sanitize_dead_code
        insns = [ins if i in seen else (BPF_JMP | BPF_JA, 0, 0, -1, 0) for i, ins in enumerate(insns)]
    pieces = []
    for k, ins in enumerate(insns):
        p = patch(orig[k], ins) if patch is not None else None
        if p is None:
            p = _div_guard(ins)               # do_misc_fixups
        pieces.append([ins] if p is None else p)
    step(pieces)
    return insns, where


# -- convert_ctx_accesses: the context structs of the socket-buffer and XDP types ------------------------------
def kernel_member_offset(btf, struct, field):
    """Byte offset of ``field`` (looked up through anonymous members) in ``struct`` of a kernel BTF, or None:
    how the profiles' ``kernel_offsets`` are measured (tests/test_profile_offsets.py)."""
    sid = btf.find_by_name_kind(struct, 4) if btf is not None else None
    if not sid or sid < 0:
        return None

    def find(tid, base):
        t = btf[tid]
        for m in t.members:
            name_off, mtype, bits = m
            off = base + (bits & 0xffffff if t.kflag else bits) // 8
            if name_off:
                if btf.str_by_offset(name_off) == field.encode():
                    return off
                continue
            _mt, mid = btf.skip_modifiers(mtype)
            if btf[mid].kind in (4, 5):   # an anonymous struct or union
                r = find(mid, off)
                if r is not None:
                    return r
        return None
    return find(sid, 0)


_SKB_TYPES = (1, 3, 4, 8, 10, 11, 12)   # socket filter, sched_cls/act, cgroup_skb, lwt in/out/xmit
_TC_TYPES = (3, 4)
_XDP = 6
_W, _H, _B, _DW = 0x00, 0x08, 0x10, 0x18
_SIZE = {_W: 4, _H: 2, _B: 1, _DW: 8}
_LDX, _ST, _STX, _MEM = 0x01, 0x02, 0x03, 0x60


def ctx_converter(prog_type, profile):
    """``convert_ctx(insn)`` for :func:`rewrite` (bpf_convert_ctx_access, tc_cls_act_convert_ctx_access,
    xdp_convert_ctx_access), with the struct layouts of the kernel version ``profile`` (a
    :class:`bpfemu.profiles.profile.Profile`); None for other program types.
    Accesses of the full field are converted; narrower loads (which the kernel widens and shifts) and the
    fields not listed are left as they are."""
    if prog_type not in _SKB_TYPES and prog_type != _XDP:
        return None
    off = profile.offset

    def ldx(size, dst, src, o):
        return (_LDX | size | _MEM, dst, src, o, 0)

    def chain(dst, src, *steps):
        """Loads through pointers: [(size, struct, field)], the first from src, the rest from dst."""
        out = []
        for k, (size, struct, field) in enumerate(steps):
            o = off(struct, field)
            if o is None:
                return None
            out.append(ldx(size, dst, src if k == 0 else dst, o))
        return out

    from .. import uapi_layout as L
    if prog_type == _XDP:
        md = {f: getattr(L.xdp_md, f).offset for f, *_ in L.xdp_md._fields_}
        table = {
            md["data"]: [(_DW, "xdp_buff", "data")], md["data_meta"]: [(_DW, "xdp_buff", "data_meta")],
            md["data_end"]: [(_DW, "xdp_buff", "data_end")],
            md["ingress_ifindex"]: [(_DW, "xdp_buff", "rxq"), (_DW, "xdp_rxq_info", "dev"),
                                    (_W, "net_device", "ifindex")],
            md["rx_queue_index"]: [(_DW, "xdp_buff", "rxq"), (_W, "xdp_rxq_info", "queue_index")],
            md["egress_ifindex"]: [(_DW, "xdp_buff", "txq"), (_DW, "xdp_txq_info", "dev"),
                                   (_W, "net_device", "ifindex")]}

        def convert(insn):
            code, dst, src, o, imm = insn
            if code != _LDX | _W | _MEM or o not in table:
                return None
            return chain(dst, src, *table[o])
        return convert

    skb = getattr(L, "__sk_buff")
    sk = {f: getattr(skb, f).offset for f, *_ in skb._fields_}
    plain = {"len": (_W, "len"), "protocol": (_H, "protocol"), "vlan_proto": (_H, "vlan_proto"),
             "priority": (_W, "priority"), "ingress_ifindex": (_W, "skb_iif"), "hash": (_W, "hash"),
             "mark": (_W, "mark"), "queue_mapping": (_H, "queue_mapping"), "vlan_tci": (_H, "vlan_tci")}
    writable = ("mark", "priority")
    by_off = {sk[f]: f for f in sk}
    cb0 = sk["cb"]
    tc = prog_type in _TC_TYPES

    def convert(insn):
        code, dst, src, o, imm = insn
        cls, size = code & 7, code & 0x18
        if code & 0xe0 != _MEM:
            return None
        if cls in (_ST, _STX):
            if cb0 <= o < cb0 + 20:
                base = off("sk_buff", "cb")
                d = off("qdisc_skb_cb", "data")
                return None if base is None or d is None else [(code, dst, src, o - cb0 + base + d, imm)]
            f = by_off.get(o)
            if f in writable and size == _W:
                t = off("sk_buff", plain[f][1])
                return None if t is None else [(code, dst, src, t, imm)]
            return None
        if cls != _LDX:
            return None
        if cb0 <= o < cb0 + 20:
            base, d = off("sk_buff", "cb"), off("qdisc_skb_cb", "data")
            return None if base is None or d is None else [ldx(size, dst, src, o - cb0 + base + d)]
        f = by_off.get(o)
        if size != _W or f is None:
            return None
        if f in plain:
            fsize, kf = plain[f]
            t = off("sk_buff", kf)
            return None if t is None else [ldx(fsize, dst, src, t)]
        if f == "pkt_type":
            t = off("sk_buff", "__pkt_type_offset")
            return None if t is None else [ldx(_B, dst, src, t), (0x04 | 0x50 | 0x00, dst, 0, 0, 7)]
        if f == "vlan_present":
            t = off("sk_buff", "vlan_all")
            if t is None:   # a bit of its own (6.1): bit 0 of its byte on a little-endian machine
                t = off("sk_buff", "__pkt_vlan_present_offset")
                return None if t is None else [ldx(_B, dst, src, t), (BPF_ALU | 0x50 | BPF_K, dst, 0, 0, 1)]
            return [ldx(_W, dst, src, t), (BPF_JMP | BPF_JEQ | BPF_K, dst, 0, 1, 0),
                                           (BPF_ALU | BPF_MOV | BPF_K, dst, 0, 0, 1)]
        if f == "ifindex":
            a, b = off("sk_buff", "dev"), off("net_device", "ifindex")
            if a is None or b is None:
                return None
            if tc:
                return [ldx(_DW, dst, src, a), ldx(_W, dst, dst, b)]
            return [ldx(_DW, dst, src, a), (BPF_JMP | BPF_JEQ | BPF_K, dst, 0, 1, 0), ldx(_W, dst, dst, b)]
        if f == "tc_classid":
            base, d = off("sk_buff", "cb"), off("qdisc_skb_cb", "tc_classid")
            return None if base is None or d is None else [ldx(_H, dst, src, base + d)]
        if f == "data":
            t = off("sk_buff", "data")
            return None if t is None else [ldx(_DW, dst, src, t)]
        if f in ("data_end", "data_meta"):
            base, d = off("sk_buff", "cb"), off("bpf_skb_data_end", f)
            return None if base is None or d is None else [ldx(_DW, dst, src, base + d)]
        return None
    return convert



class FixupState:
    """What the rewrites need to know of one verification (kept with the program): the instructions reached
    (``seen``), whether the loader had CAP_BPF, the context accesses, the map of each bpf_map_lookup_elem
    call whose map is known (insn_aux_data's map_ptr_state)."""
    __slots__ = ("seen", "bpf_capable", "ctx_insns", "lookup_maps", "seen_direct_write")

    def __init__(self, env):
        from .verifier.regs import PTR_TO_CTX, base_type
        self.seen = env.insn_seen
        self.bpf_capable = env.bpf_capable
        self.seen_direct_write = getattr(env, "seen_direct_write", False)
        self.ctx_insns = set()
        self.lookup_maps = {}
        insns = env.insns
        for i, a in env.insn_aux.items():
            if base_type(a.ptr_type) == PTR_TO_CTX:
                self.ctx_insns.add(i)
            if i < len(insns) and tuple(insns[i])[0] == BPF_JMP | BPF_CALL and insns[i][2] == 0 and \
                    insns[i][4] == BPF_FUNC_map_lookup_elem and a.map_ptr is not None and not a.map_ptr_poisoned:
                self.lookup_maps[i] = a.map_ptr


BPF_FUNC_map_lookup_elem = 1
BPF_F_INNER_MAP = 1 << 12
_MAP_HASH, _MAP_ARRAY = 1, 2


def map_gen_lookup(m, profile):
    """The inline form of bpf_map_lookup_elem(m, key) (``array_map_gen_lookup``, ``htab_map_gen_lookup``),
    or None where the kernel calls the map's function (or the layout is unknown). The hash table's call is to
    a kernel function: its immediate is 0 here (an address on the host)."""
    if m.map_type == _MAP_ARRAY and not m.map_flags & BPF_F_INNER_MAP:
        base = profile.offset("bpf_array", "value")
        if base is None:
            return None
        elem = (m.value_size + 7) // 8 * 8
        out = [(BPF_ALU64 | BPF_ADD | BPF_K, 1, 0, 0, base), (_LDX | _W | _MEM, 0, 2, 0, 0)]
        if getattr(m, "bypass_spec_v1", True):
            out.append((BPF_JMP | 0x30 | BPF_K, 0, 0, 3, m.max_entries))          # JGE
        else:
            mask = (1 << (m.max_entries - 1).bit_length()) - 1 if m.max_entries > 1 else 0
            out += [(BPF_JMP | 0x30 | BPF_K, 0, 0, 4, m.max_entries), (BPF_ALU | 0x50 | BPF_K, 0, 0, 0, mask)]
        if elem & (elem - 1) == 0:
            out.append((BPF_ALU64 | 0x60 | BPF_K, 0, 0, 0, elem.bit_length() - 1))  # LSH
        else:
            out.append((BPF_ALU64 | 0x20 | BPF_K, 0, 0, 0, elem))                   # MUL
        return out + [(BPF_ALU64 | BPF_ADD | BPF_X, 0, 1, 0, 0), (BPF_JMP | BPF_JA, 0, 0, 1, 0),
                      (BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 0)]
    if m.map_type == _MAP_HASH:
        key = profile.offset("htab_elem", "key")
        if key is None:
            return None
        return [(BPF_JMP | BPF_CALL, 0, 0, 0, 0), (BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 1, 0),
                (BPF_ALU64 | BPF_ADD | BPF_K, 0, 0, 0, key + (m.key_size + 7) // 8 * 8)]
    return None


def gen_ld_abs(insn):
    """LD_ABS/LD_IND as a call of the kernel's skb load function (``bpf_gen_ld_abs``, socket filter and tc):
    offset in r2, the context (r6) in r1, and an exit with 0 when the load fails. The call's immediate is 0
    here (an address on the host)."""
    code, _dst, src, _off, imm = insn
    if code & 0xe0 == 0x20:
        out = [(BPF_ALU64 | BPF_MOV | BPF_K, 2, 0, 0, imm)]
    else:
        out = [(BPF_ALU64 | BPF_MOV | BPF_X, 2, src, 0, 0)]
        if imm:
            out.append((BPF_ALU64 | BPF_ADD | BPF_K, 2, 0, 0, imm))
    return out + [(BPF_ALU64 | BPF_MOV | BPF_X, 1, 6, 0, 0), (BPF_JMP | BPF_CALL, 0, 0, 0, 0),
                  (BPF_JMP | 0x70 | BPF_K, 0, 0, 2, 0),                     # JSGE r0, 0, +2
                  (BPF_ALU | BPF_XOR | BPF_X, 0, 0, 0, 0), (BPF_JMP | BPF_EXIT, 0, 0, 0, 0)]


def patcher(prog_type, state, profile):
    """``patch(idx, insn)`` for :func:`rewrite`: context conversions and inlined map lookups, with the struct
    offsets of the kernel version ``profile``."""
    convert = ctx_converter(prog_type, profile) if state.ctx_insns else None

    ld_abs = prog_type in (1, 3, 4)

    drop = _UNCLONE_DROP.get(prog_type)
    prologue = unclone_prologue(profile, drop) if drop is not None and state.seen_direct_write else None

    def one(idx, insn):
        if ld_abs and insn[0] & 7 == 0 and insn[0] & 0xe0 in (0x20, 0x40):
            return gen_ld_abs(insn)
        if convert is not None and idx in state.ctx_insns:
            return convert(insn)
        m = state.lookup_maps.get(idx)
        if m is not None:
            return map_gen_lookup(m, profile)
        return None

    def patch(idx, insn):
        p = one(idx, insn)
        if idx == 0 and prologue is not None:
            return prologue + (p or _div_guard(insn) or [insn])
        return p
    return patch


_UNCLONE_DROP = {3: 2, 4: 2, 12: 2, 14: 0}   # tc and lwt_xmit: TC_ACT_SHOT; sk_skb: SK_DROP
BPF_FUNC_skb_pull_data = 39


def unclone_prologue(profile, drop_verdict):
    """The prologue of a program that writes packet data (``bpf_unclone_prologue``): a cloned skb is made
    private with bpf_skb_pull_data(skb, 0) first (the call's immediate is 0 here, an address on the host);
    the program's first instruction follows it. None when the profile lacks ``sk_buff``'s offsets."""
    cloned = profile.offset("sk_buff", "__cloned_offset")
    if cloned is None:
        return None
    return [(_LDX | _B | _MEM, 6, 1, cloned, 0), (BPF_ALU | 0x50 | BPF_K, 6, 0, 0, 1),
            (BPF_JMP | BPF_JEQ | BPF_K, 6, 0, 7, 0),
            (BPF_ALU64 | BPF_MOV | BPF_X, 6, 1, 0, 0), (BPF_ALU64 | BPF_XOR | BPF_X, 2, 2, 0, 0),
            (BPF_JMP | BPF_CALL, 0, 0, 0, 0), (BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 2, 0),
            (BPF_ALU | BPF_MOV | BPF_K, 0, 0, 0, drop_verdict), (BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
            (BPF_ALU64 | BPF_MOV | BPF_X, 1, 6, 0, 0)]


def dump_subprog_calls(insns):
    """How the xlated dump of a JIT-compiled multi-function program shows a bpf2bpf call (``jit_subprogs``
    puts it back so): ``off`` is the call's relative offset and ``imm`` the callee's subprogram number."""
    calls = [k for k, ins in enumerate(insns) if ins[0] == BPF_JMP | BPF_CALL and ins[2] == BPF_PSEUDO_CALL]
    if not calls:
        return insns
    starts = {0}
    for k, ins in enumerate(insns):
        t = _target(insns, k)
        if t is not None and ((ins[0] == BPF_JMP | BPF_CALL and ins[2] == BPF_PSEUDO_CALL) or
                              (ins[0] == _LD_IMM64 and ins[2] == BPF_PSEUDO_FUNC)):
            starts.add(t)
    order = {t: n for n, t in enumerate(sorted(starts))}
    out = list(insns)
    for k in calls:
        code, dst, src, _off, imm = out[k]
        out[k] = (code, dst, src, imm, order[k + imm + 1])
    return out
