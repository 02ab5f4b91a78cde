"""Corpora of the kernel's BPF verifier selftests, read at run time from a kernel tree (never committed), and
our recordings of what the host kernel does with them.

- :mod:`.verifier`: Linux 6.1's ``tools/testing/selftests/bpf/verifier/*.c`` (1365 programs) -> ``Case``;
- :mod:`.progs`: 6.12's ``progs/verifier_*.c`` (1126 of 1369 programs: the naked inline-assembly ones);
- :mod:`.runner`: ``run_case(case, sys)`` loads and test-runs a case on any backend; ``cause(log)``;
- :mod:`.record`: the recordings (``verifier-host-6.18.json``, ``verifier-progs-host-6.18.json``) and the
  comparison of outcomes;
- ``python -m conformance.corpus.verifier --help``: count, record, per-file agreement table, one case.
"""
