"""Helpers of kernel/bpf/ringbuf.c (filled in below)."""
