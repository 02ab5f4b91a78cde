"""Map types: one module per file of the kernel's kernel/bpf/ (hashtab.py, arraymap.py, lpm_trie.py, ...).

:mod:`bpfemu.maps.bpf_map` declares struct bpf_map and every op of struct bpf_map_ops with the kernel's
default answer; each map type is a subclass in its own file, and :mod:`bpfemu.maps.bpf_types` is the
registry (one line per type). This package imports nothing here, so a module can import one map file
without loading the others.
"""
