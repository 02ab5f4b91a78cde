"""Generate bpfemu/uapi_layout.py from the running kernel's BTF.

    python tools/gen_uapi.py [/sys/kernel/btf/vmlinux]

The output holds every BPF_* enumerator the kernel knows and ctypes classes for
union bpf_attr and the info structs, with the kernel's field names and offsets.
Anonymous members stay anonymous (ctypes ``_anonymous_``), so ``attr.map_type``
reads as it does in C. conformance/test_uapi.py checks the committed file
against the host kernel's BTF.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from btfdump import BTF  # noqa: E402

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


OUTPUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bpfemu", "uapi_layout.py")


def main():
    text, sizes = generate(sys.argv[1] if len(sys.argv) > 1 else "/sys/kernel/btf/vmlinux")
    path = OUTPUT
    with open(path, "w") as f:
        f.write(text)
    # verify: every leaf offset in the generated classes equals the BTF offset
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import importlib
    mod = importlib.import_module("bpfemu.uapi_layout")
    for n, _k in ROOTS:
        cls = getattr(mod, n)
        assert ctypes_sizeof(cls) == sizes[n], (n, ctypes_sizeof(cls), sizes[n])
    print("wrote", os.path.normpath(path))


def ctypes_sizeof(cls):
    import ctypes
    return ctypes.sizeof(cls)


if __name__ == "__main__":
    main()
