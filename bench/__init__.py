"""Benchmarks of bpfemu against the host bpf(2) syscall: ``python -m bench`` (see bench/run.py)."""
