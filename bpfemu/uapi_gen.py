"""Generate bpfemu/uapi_layout.py from the kernel's BTF, and the small BTF reader it needs.

    python tools/gen_uapi.py [/sys/kernel/btf/vmlinux]     # rewrite bpfemu/uapi_layout.py

The output holds every BPF_* enumerator the kernel knows and ctypes classes for
union bpf_attr and the info structs, with the kernel's field names and offsets.
Anonymous members stay anonymous (ctypes ``_anonymous_``), so ``attr.map_type``
reads as it does in C. The conformance suite (conformance/test_uapi.py, shipped
in the package) regenerates the text from the running kernel's BTF and compares.

:class:`BTF` only reads the type section of vmlinux BTF to answer layout
questions; it is not the model of BTF objects bpf(2) loads.
"""
import ctypes
import os
import struct

KIND_NAMES = {1: "int", 2: "ptr", 3: "array", 4: "struct", 5: "union", 6: "enum",
              7: "fwd", 8: "typedef", 9: "volatile", 10: "const", 11: "restrict",
              12: "func", 13: "func_proto", 14: "var", 15: "datasec", 16: "float",
              17: "decl_tag", 18: "type_tag", 19: "enum64"}


class BTF:
    def __init__(self, path="/sys/kernel/btf/vmlinux"):
        with open(path, "rb") as f:
            data = f.read()
        magic, ver, flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("<HBBIIIII", data, 0)
        if magic != 0xEB9F:
            raise ValueError("not BTF")
        self.strings = data[hdr_len + str_off: hdr_len + str_off + str_len]
        types = data[hdr_len + type_off: hdr_len + type_off + type_len]
        self.types = [None]  # id 0 is void
        off = 0
        while off < len(types):
            name_off, info, size_type = struct.unpack_from("<III", types, off)
            off += 12
            kind = (info >> 24) & 0x1F
            vlen = info & 0xFFFF
            kflag = info >> 31
            t = {"name": self.str(name_off), "kind": KIND_NAMES.get(kind, kind), "size": size_type,
                 "type": size_type, "kflag": kflag}
            if kind == 1:
                enc = struct.unpack_from("<I", types, off)[0]
                t["signed"] = bool((enc >> 24) & 1)
                off += 4
            elif kind == 3:
                elem, _idx, nelems = struct.unpack_from("<III", types, off)
                t["elem"], t["nelems"] = elem, nelems
                off += 12
            elif kind in (4, 5):
                members = []
                for _ in range(vlen):
                    mn, mt, mo = struct.unpack_from("<III", types, off)
                    off += 12
                    if kflag:
                        members.append((self.str(mn), mt, mo & 0xFFFFFF, mo >> 24))
                    else:
                        members.append((self.str(mn), mt, mo, 0))
                t["members"] = members
            elif kind == 6:
                vals = []
                for _ in range(vlen):
                    vn, vv = struct.unpack_from("<Ii", types, off)
                    off += 8
                    vals.append((self.str(vn), vv))
                t["values"] = vals
            elif kind == 19:
                vals = []
                for _ in range(vlen):
                    vn, lo, hi = struct.unpack_from("<III", types, off)
                    off += 12
                    vals.append((self.str(vn), lo | (hi << 32)))
                t["values"] = vals
            elif kind == 13:
                off += 8 * vlen
            elif kind == 14:
                off += 4
            elif kind == 15:
                off += 12 * vlen
            elif kind == 17:
                off += 4
            self.types.append(t)

    def str(self, off):
        end = self.strings.index(b"\0", off)
        return self.strings[off:end].decode()

    def find(self, name, kind):
        for i, t in enumerate(self.types):
            if t and t["name"] == name and t["kind"] == kind:
                return i
        raise KeyError((name, kind))

    def resolve(self, tid):
        """Skip typedef/const/volatile."""
        while self.types[tid] and self.types[tid]["kind"] in ("typedef", "const", "volatile", "restrict", "type_tag"):
            tid = self.types[tid]["type"]
        return tid

    def sizeof(self, tid):
        tid = self.resolve(tid)
        t = self.types[tid]
        if t["kind"] in ("int", "struct", "union", "enum", "enum64", "float"):
            return t["size"]
        if t["kind"] == "ptr":
            return 8
        if t["kind"] == "array":
            return self.sizeof(t["elem"]) * t["nelems"]
        raise ValueError(t)

    def enum_values_with_prefix(self, prefix):
        """Every enumerator (named or anonymous enum) whose name starts with prefix."""
        out = {}
        for t in self.types:
            if t and t["kind"] in ("enum", "enum64"):
                for n, v in t["values"]:
                    if n.startswith(prefix):
                        out[n] = v
        return out

    def flatten(self, tid, base=0, prefix=""):
        """Yield (dotted name, byte offset, size, kind-ish) for leaf fields."""
        tid = self.resolve(tid)
        t = self.types[tid]
        for name, mt, bitoff, bitsize in t["members"]:
            rt = self.resolve(mt)
            mtype = self.types[rt]
            if mtype["kind"] in ("struct", "union"):
                sub = prefix + name + "." if name else prefix
                yield (prefix + name if name else "", base + bitoff // 8, self.sizeof(rt), mtype["kind"], bitsize, bitoff)
                yield from self.flatten(rt, base + bitoff // 8, sub)
            else:
                yield (prefix + name, base + bitoff // 8, self.sizeof(rt) if not bitsize else 0, mtype["kind"], bitsize, bitoff)


ROOTS = [("bpf_attr", "union"), ("bpf_map_info", "struct"), ("bpf_prog_info", "struct"),
         ("bpf_btf_info", "struct"), ("bpf_link_info", "struct"),
         # program contexts and the socket views programs read (the verifier's ctx access rules)
         ("__sk_buff", "struct"), ("xdp_md", "struct"), ("bpf_sock", "struct"), ("bpf_tcp_sock", "struct"),
         ("bpf_xdp_sock", "struct"), ("bpf_sock_addr", "struct"), ("bpf_sock_ops", "struct"),
         ("sk_msg_md", "struct"), ("sk_reuseport_md", "struct"), ("bpf_sk_lookup", "struct"),
         ("bpf_sockopt", "struct"), ("bpf_sysctl", "struct"), ("bpf_cgroup_dev_ctx", "struct"),
         ("bpf_flow_keys", "struct"), ("bpf_perf_event_data", "struct"), ("bpf_spin_lock", "struct"),
         ("bpf_timer", "struct"), ("bpf_dynptr", "struct"), ("bpf_sock_tuple", "struct")]
ENUMS = ["bpf_cmd", "bpf_map_type", "bpf_prog_type", "bpf_attach_type", "bpf_link_type", "bpf_func_id"]
# Names the kernel gives to the anonymous per-command structs of union bpf_attr,
# in member order (the kernel has no names for them; these follow the comments
# in the uapi header).
ATTR_ANON = ["map_create", "map_elem", "prog_load", "obj", "prog_attach", "getid", "btf_load"]


class Gen:
    def __init__(self, btf):
        self.btf = btf
        self.out = []
        self.done = {}
        self.counter = 0

    def ctype(self, tid, owner, fname):
        b = self.btf
        rid = b.resolve(tid)
        t = b.types[rid]
        k = t["kind"]
        if k == "int":
            if t["name"] == "char":
                return "ctypes.c_char"
            if t["size"] == 1 and not t["signed"]:
                return "ctypes.c_uint8"
            return "ctypes.c_%sint%d" % ("" if t["signed"] else "u", t["size"] * 8)
        if k in ("enum", "enum64"):
            return "ctypes.c_uint%d" % (t["size"] * 8)
        if k == "ptr":
            return "ctypes.c_uint64"
        if k == "array":
            return "(%s * %d)" % (self.ctype(t["elem"], owner, fname), t["nelems"])
        if k in ("struct", "union"):
            return self.emit(rid, t["name"] or "%s_%s" % (owner, fname or "anon"))
        raise ValueError(t)

    def emit(self, tid, name):
        if tid in self.done:
            return self.done[tid]
        b = self.btf
        t = b.types[tid]
        self.done[tid] = name
        fields, anon = [], []
        anon_names = list(ATTR_ANON) if name == "bpf_attr" else []
        nanon = 0
        for mname, mt, bitoff, bitsize in t["members"]:
            rid = b.resolve(mt)
            if not mname:
                if anon_names:
                    mname = anon_names.pop(0)
                    sub = "bpf_attr_" + mname
                else:
                    nanon += 1
                    mname = "_u%d" % nanon
                    # a class-private name (__sk_buff_u1) would be mangled inside the owner's class body
                    sub = "%s_u%d" % (name.lstrip("_"), nanon)
                    anon.append(mname)
                if name == "bpf_attr":
                    anon.append(mname)
                ct = self.emit(rid, sub)
            else:
                ct = self.ctype(mt, name, mname)
            if bitsize:
                fields.append("(%r, %s, %d)" % (mname, ct, bitsize))
            else:
                fields.append("(%r, %s)" % (mname, ct))
        base = "ctypes.Union" if t["kind"] == "union" else "ctypes.Structure"
        lines = ["class %s(%s):" % (name, base)]
        if anon:
            lines.append("    _anonymous_ = %r" % (tuple(anon),))
        lines.append("    _fields_ = [")
        lines += ["        %s," % f for f in fields]
        lines.append("    ]")
        lines.append("")
        lines.append("")
        self.out.append("\n".join(lines))
        return name


def generate(btf_path="/sys/kernel/btf/vmlinux"):
    """The source text of bpfemu/uapi_layout.py for the kernel whose BTF is at btf_path."""
    btf = BTF(btf_path)
    g = Gen(btf)
    sizes = {}
    for n, k in ROOTS:
        tid = btf.find(n, k)
        g.emit(tid, n)
        sizes[n] = btf.sizeof(tid)
    enums = {}
    for e in ENUMS:
        enums[e] = btf.types[btf.find(e, "enum")]["values"]
    consts = {}
    seen_bad = set()
    for t in btf.types:
        if t and t["kind"] in ("enum", "enum64") and not t["name"].startswith("bpf_") or (t and t["name"] in ENUMS):
            for n, v in t.get("values", ()):
                if not n.startswith("BPF_"):
                    continue
                if n in consts and consts[n] != v:
                    seen_bad.add(n)
                consts[n] = v
    for n in seen_bad:
        del consts[n]
    src = ['"""GENERATED by tools/gen_uapi.py from the kernel BTF: do not edit.\n\n'
           'Layouts and enumerators of the bpf(2) uapi as the kernel that generated it\n'
           'sees them. bpfemu/uapi.py is the module to import.\n"""',
           "import ctypes", "", ""]
    src += g.out
    src.append("SIZES = %r\n" % sizes)
    src.append("ENUMS = {")
    for e, vals in enums.items():
        src.append("    %r: [" % e)
        src += ["        (%r, %d)," % nv for nv in vals]
        src.append("    ],")
    src.append("}\n")
    src.append("CONSTANTS = {")
    src += ["    %r: %d," % (n, consts[n]) for n in sorted(consts)]
    src.append("}\n")
    return "\n".join(src), sizes


OUTPUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "uapi_layout.py")


def main(argv=()):
    """Write bpfemu/uapi_layout.py for the kernel whose BTF is argv[0] (default: the running kernel's)."""
    text, sizes = generate(argv[0] if argv else "/sys/kernel/btf/vmlinux")
    with open(OUTPUT, "w") as f:
        f.write(text)
    # verify: the generated classes have the kernel's sizes
    ns = {}
    exec(compile(text, OUTPUT, "exec"), ns)
    for n, _k in ROOTS:
        assert ctypes.sizeof(ns[n]) == sizes[n], (n, ctypes.sizeof(ns[n]), sizes[n])
    print("wrote", os.path.normpath(OUTPUT))
