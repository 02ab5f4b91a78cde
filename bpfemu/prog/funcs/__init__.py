"""The implementations of the helper functions a running program calls (the ``func`` of each
``struct bpf_func_proto``), in modules named after the kernel files that define them:

=================  =======================================  ===========================================
module             kernel                                   helpers
=================  =======================================  ===========================================
``helpers``        kernel/bpf/helpers.c, bpf_iter.c         maps, time, random, CPU, current task, spin
                                                            locks, timers, bpf_loop, strings
``bpf_trace``      kernel/trace/bpf_trace.c                 trace_printk, snprintf, perf_event_output
``ringbuf``        kernel/bpf/ringbuf.c                     ringbuf output/reserve/submit/discard/query
``filter``         net/core/filter.c                        skb and xdp data, checksums, redirects
=================  =======================================  ===========================================

Each implementation is linked to its prototypes in :mod:`bpfemu.prog.helpers` with ``@helper_impl(name...)``
(the prototype stays the one declaration of a helper); importing this package links them all.
:func:`bpfemu.prog.core.bpf_prog_select_runtime` gives a loaded program the implementations of the
prototypes the verifier chose for it. An implementation is ``fn(run, r1, r2, r3, r4, r5) -> int``: ``run``
is the :class:`bpfemu.prog.core.RunCtx` (memory, CPU, task, kernel, program), arguments are u64, pointers
are addresses in ``run.mem``; an error is returned as the kernel returns it, ``-errno`` (as a u64).
"""
from . import bpf_trace, filter, helpers, ringbuf  # noqa: F401
