"""The bpf(2) syscall (the kernel's kernel/bpf/syscall.c).

- :mod:`~bpfemu.syscall.table`: every command's facts, declared once (last attr field, user pointers with
  their lengths and directions, fd fields with their kinds);
- :mod:`~bpfemu.syscall.sys_bpf`: the front (attr size and tail rules, copy-in, CHECK_ATTR, lock, dispatch);
- one module per command family: ``map`` (MAP_*), ``obj`` (OBJ_PIN, OBJ_GET), ``id`` (*_GET_NEXT_ID,
  *_GET_FD_BY_ID), ``info`` (OBJ_GET_INFO_BY_FD), and ``mmap`` (mmap(2) of a map fd); ``common`` holds what
  several of them share.

Adding a command: its ``Command(...)`` line in ``table.TABLE``, its handler ``@command(BPF_X) def x(ctx)`` in
a family module, and that module in sys_bpf's family import. This package imports nothing here, so the
host backend can read the table without loading the emulator.
"""
