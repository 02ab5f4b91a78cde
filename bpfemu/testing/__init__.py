"""Testing with bpfemu: the pytest plugin, the two backends, helpers, fuzzing and the conformance suite.

- :mod:`~bpfemu.testing.pytest_plugin`: the ``bpf_kernel``, ``bpf_sys`` and ``bpf_backend`` fixtures
  (registered through the ``pytest11`` entry point);
- :mod:`~bpfemu.testing.backends`: EmuBackend and HostBackend, one shape for both machines;
- :mod:`~bpfemu.testing.support`: helpers that build attrs and run commands on any backend (errno in,
  bytes out), for conformance tests and for your own;
- :mod:`~bpfemu.testing.exec_support`: run a command under ``bpfemu exec`` as an unprivileged user and as
  root on the host, and compare (the conformance/test_exec_*.py sessions);
- :mod:`~bpfemu.testing.fuzz`: replayable random bpf(2) call sequences (needs hypothesis);
- :mod:`~bpfemu.testing.conform`: ``python -m bpfemu conform``;
- ``conformance``: the conformance suite itself (the repository's ``conformance/``, shipped here).
"""
