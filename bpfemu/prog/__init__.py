"""Programs: struct bpf_prog and what loads, verifies and runs it (kernel/bpf/verifier.c, core.c, helpers.c).

``insn`` holds the instruction encoding and the kernel's builder macros.
"""
