"""Generate bpfemu/uapi_layout.py from the running kernel's BTF (the generator is bpfemu/uapi_gen.py).

    python tools/gen_uapi.py [/sys/kernel/btf/vmlinux]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bpfemu.uapi_gen import main  # noqa: E402

if __name__ == "__main__":
    main(sys.argv[1:])
