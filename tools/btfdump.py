"""Read the kernel's BTF (/sys/kernel/btf/vmlinux) and answer layout questions.

Used by tools/gen_uapi.py to generate bpfemu/_uapi_layout.py, and by the
conformance tests to check that the generated layout still matches the
running kernel.
"""
import struct
import sys

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
            full = prefix + name if name else prefix.rstrip(".") if False else prefix
            if mtype["kind"] in ("struct", "union"):
                sub = prefix + name + "." if name else prefix
                yield (prefix + name if name else "", base + bitoff // 8, self.sizeof(rt), mtype["kind"], bitsize, bitoff)
                yield from self.flatten(rt, base + bitoff // 8, sub)
            else:
                yield (prefix + name, base + bitoff // 8, self.sizeof(rt) if not bitsize else 0, mtype["kind"], bitsize, bitoff)


if __name__ == "__main__":
    b = BTF()
    name = sys.argv[1]
    kind = sys.argv[2] if len(sys.argv) > 2 else "struct"
    tid = b.find(name, kind)
    if kind in ("enum", "enum64"):
        for n, v in b.types[tid]["values"]:
            print(n, v)
    else:
        print(name, b.sizeof(tid))
        for row in b.flatten(tid):
            print(row)
