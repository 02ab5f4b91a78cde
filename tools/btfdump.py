"""Print a type of the kernel's BTF (/sys/kernel/btf/vmlinux): an enum's values, or a struct's size and
leaf fields with their offsets. The reader is bpfemu.uapi_gen.BTF.

    python tools/btfdump.py bpf_attr union
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bpfemu.uapi_gen import BTF  # noqa: E402

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
