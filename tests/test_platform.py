"""The platform bpfemu runs on: process_vm_readv blocked by seccomp (as in some containers), and the simulated
non-Linux platform (BPFEMU_PLATFORM=nonlinux). Each case runs in a child Python, as a user's process would."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

import bpfemu
from bpfemu import hostenv
from bpfemu.testing.support import need_linux

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python(*parts, env_extra=None):
    """Run the code ``parts`` in a child Python with this checkout's bpfemu; its last stdout line, as JSON."""
    code = "\n".join(textwrap.dedent(p) for p in parts)
    env = {k: v for k, v in os.environ.items() if k != hostenv.ENV}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.update(env_extra or {})
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


REPORT = '''
    import ctypes, errno, json
    import bpfemu
    from bpfemu import Map, uapi

    def report():
        kernel = bpfemu.Kernel()
        proc = kernel.spawn()
        m = Map.create(proc, "hash", key="I", value="I", max_entries=2)
        m[1] = 2
        try:  # the NULL page is EFAULT everywhere
            proc.bpf(uapi.BPF_MAP_LOOKUP_ELEM, uapi.make_attr(map_fd=m.fd, key=8, value=8))
            null = 0
        except OSError as e:
            null = e.errno
        return {"checked": kernel.checked_user_memory, "why": kernel.user_memory_reason,
                "host": list(bpfemu.host.available()), "value": m[1], "null": null}
'''


def need_seccomp():
    need_linux("seccomp")
    if not hostenv.process_vm_status()[0]:
        pytest.skip("process_vm_readv is blocked here already: %s" % hostenv.process_vm_status()[1])


def test_a_blocked_process_vm_readv_is_detected_and_said():
    need_seccomp()
    rest = "\n".join(textwrap.dedent(p) for p in (REPORT, "print(json.dumps(report()))"))
    got = python('''
        import os, sys
        from bpfemu.testing.support import block_process_vm
        block_process_vm()
        # a fresh program under the filter, as in a container whose profile blocks the calls from the start
        os.execv(sys.executable, [sys.executable, "-c", %r])
    ''' % rest)
    assert got["checked"] is False and "process_vm_readv" in got["why"] and "EPERM" in got["why"], got
    ok, why = got["host"]
    assert ok is False and "cannot read this process's memory" in why and "process_vm_readv" in why, got
    assert got["value"] == 2 and got["null"] == 14  # maps work; the NULL page is still EFAULT


def test_a_block_that_comes_later_is_seen_at_the_first_refused_copy():
    need_seccomp()
    got = python(REPORT, '''
        before = report()
        from bpfemu.testing.support import block_process_vm
        from bpfemu.usermem import LOCAL, SCRATCH
        block_process_vm()
        # copies of up to SCRATCH bytes go through a pipe, which the block leaves alone; a bigger one
        # goes through process_vm_readv
        big = ctypes.create_string_buffer(2 * SCRATCH)
        LOCAL.read(ctypes.addressof(big), len(big))
        after = report()
        print(json.dumps([before["checked"], after]))
    ''')
    before, after = got
    assert before is True
    assert after["checked"] is False and "at run time" in after["why"] and after["value"] == 2, after


def test_the_simulated_non_linux_platform():
    got = python(REPORT, '''
        import bpfemu.host.sysinfo as si
        from bpfemu import hostenv
        r = report()
        r["linux"] = hostenv.is_linux()
        r["cpus"] = bpfemu.Kernel().ncpus
        r["sysctl"] = bpfemu.Kernel().sysctl["kernel.unprivileged_bpf_disabled"]
        r["possible"] = si.host_possible_cpus()
        from bpfemu.btf.vmlinux import is_built_in
        r["own_btf"] = is_built_in(bpfemu.Kernel().btf_vmlinux.btf)
        import bpfemu.exec
        try:
            bpfemu.exec.run(["true"])
        except OSError as e:
            r["exec"] = [e.errno, str(e)]
        print(json.dumps(r))
    ''', env_extra={hostenv.ENV: hostenv.NONLINUX})
    assert got["linux"] is False and got["checked"] is False and "not Linux (simulated" in got["why"], got
    assert got["host"] == [False, "not Linux (simulated: BPFEMU_PLATFORM=nonlinux)"], got
    assert (got["cpus"], got["sysctl"], got["possible"]) == (2, 2, None), got
    assert got["value"] == 2 and got["null"] == 14
    assert got["own_btf"] is True  # not /sys/kernel/btf/vmlinux
    errno_, why = got["exec"]  # bpfemu exec says it needs Linux before it tries anything
    assert errno_ == 38 and "needs Linux (seccomp user notification)" in why and "simulated" in why, got


def test_this_process_says_what_it_checks():
    kernel = bpfemu.Kernel()
    ok, why = hostenv.process_vm_status()
    assert kernel.checked_user_memory == ok and kernel.user_memory_reason == why
