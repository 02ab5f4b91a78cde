"""bpfemu exec: the seccomp filter program, and bpfemu.exec.run() end to end on small targets.

The targets are Python scripts calling bpf(2) through ctypes, so these tests need no tool
beyond the interpreter; the comparisons with the host (bpftool, libbpf programs) live in
conformance/test_exec_*.py.
"""
import os
import shutil
import struct
import subprocess
import sys
import textwrap

import pytest

import bpfemu
from bpfemu import uapi
from bpfemu.exec import abi, seccomp
from bpfemu.exec.supervisor import _rules, filter_program

pytestmark = [pytest.mark.bpf_needs_linux("bpfemu exec (seccomp user notification)"),
              pytest.mark.skipif(abi.ARCH != "x86_64", reason="bpfemu exec knows the x86_64 syscall ABI only")]


# -- the filter program, run by a small classic BPF interpreter ---------------------------------------
def run_filter(prog, nr, args=(0,) * 6, arch=abi.AUDIT_ARCH):
    data = struct.pack("<iIQ6Q", nr, arch, 0, *(list(args) + [0] * (6 - len(args))))
    pc, acc = 0, 0
    for _ in range(10000):
        code, jt, jf, k = prog[pc]
        if code == seccomp.BPF_LD_W_ABS:
            acc = struct.unpack_from("<I", data, k)[0]
        elif code == seccomp.BPF_JMP_JEQ_K:
            pc += jt if acc == k else jf
        elif code == seccomp.BPF_JMP_JSET_K:
            pc += jt if acc & k else jf
        elif code == seccomp.BPF_RET_K:
            return k
        else:
            raise AssertionError("unexpected opcode %#x" % code)
        pc += 1
    raise AssertionError("no return")


NOTIF, ALLOW = seccomp.SECCOMP_RET_USER_NOTIF, seccomp.SECCOMP_RET_ALLOW


def test_filter_notifies_the_intercepted_calls_and_allows_the_rest():
    prog = filter_program()
    assert len(prog) < 4096
    for r in _rules():
        if r.when is None:
            assert run_filter(prog, r.nr) == NOTIF, abi.NAMES[r.nr]
    for name in ("read", "write", "close", "execve" if "execve" in abi.NR else "read", "getpid" if "getpid" in abi.NR
                 else "write"):
        assert run_filter(prog, abi.NR[name]) == ALLOW
    assert run_filter(prog, 39) == ALLOW  # getpid
    assert run_filter(prog, abi.NR["bpf"], arch=0x40000003) == ALLOW  # another ABI (i386) is not ours


def test_filter_argument_conditions():
    prog = filter_program()
    mmap = abi.NR["mmap"]
    assert run_filter(prog, mmap, (0, 4096, 3, abi.MAP_SHARED, 5, 0)) == NOTIF
    assert run_filter(prog, mmap, (0, 4096, 3, abi.MAP_PRIVATE | abi.MAP_ANONYMOUS, 0xFFFFFFFFFFFFFFFF, 0)) == ALLOW
    assert run_filter(prog, mmap, (0, 4096, 3, abi.MAP_SHARED | abi.MAP_ANONYMOUS, 0xFFFFFFFF, 0)) == ALLOW
    mprotect = abi.NR["mprotect"]
    assert run_filter(prog, mprotect, (4096, 4096, abi.PROT_READ)) == ALLOW
    assert run_filter(prog, mprotect, (4096, 4096, abi.PROT_READ | abi.PROT_WRITE)) == NOTIF
    assert run_filter(prog, mprotect, (4096, 4096, abi.PROT_EXEC)) == NOTIF
    fcntl = abi.NR["fcntl"]
    assert run_filter(prog, fcntl, (3, abi.F_GETFL)) == NOTIF
    assert run_filter(prog, fcntl, (3, 1)) == ALLOW  # F_GETFD runs in the kernel as it is


def test_notification_structs_match_the_kernel():
    notif, resp, data = seccomp.notif_sizes()
    assert (notif, resp, data) == (seccomp.NOTIF_SIZE, seccomp.RESP_SIZE, 64)


# -- run() end to end ---------------------------------------------------------------------------------
TARGET_HEAD = textwrap.dedent("""
    import ctypes, errno, os, struct, sys
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    def bpf(cmd, attr):
        buf = ctypes.create_string_buffer(bytes(attr), 128)
        r = libc.syscall(321, cmd, buf, 128)
        if r < 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
        return r, buf
    def create(t, k, v, n, flags=0):
        return bpf(0, struct.pack("<IIIII", t, k, v, n, flags))[0]
    def update(fd, key, value, flags=0):
        kb, vb = ctypes.create_string_buffer(key), ctypes.create_string_buffer(value)
        return bpf(2, struct.pack("<IIQQQ", fd, 0, ctypes.addressof(kb), ctypes.addressof(vb), flags))
    def lookup(fd, key, n):
        kb, vb = ctypes.create_string_buffer(key), ctypes.create_string_buffer(n)
        bpf(1, struct.pack("<IIQQQ", fd, 0, ctypes.addressof(kb), ctypes.addressof(vb), 0))
        return vb.raw[:n]
    def pin(fd, path):
        p = ctypes.create_string_buffer(path.encode())
        return bpf(6, struct.pack("<QII", ctypes.addressof(p), fd, 0))
    def next_id(start):
        return struct.unpack_from("<I", bpf(12, struct.pack("<II", start, 0))[1], 4)[0]
    def obj_get(path):
        p = ctypes.create_string_buffer(path.encode())
        return bpf(7, struct.pack("<QII", ctypes.addressof(p), 0, 0))[0]
""")


def run_py(tmp_path, body, **kw):
    script = tmp_path / "target.py"
    script.write_text(TARGET_HEAD + textwrap.dedent(body))
    out = tmp_path / "out.txt"
    with open(out, "wb") as f:
        status = bpfemu.exec.run([sys.executable, str(script)], stdout=f, stderr=subprocess.STDOUT, **kw)
    return status, out.read_text()


def test_exit_status_and_signals():
    assert bpfemu.exec.run(["true"]) == 0
    assert bpfemu.exec.run(["sh", "-c", "exit 7"]) == 7
    assert bpfemu.exec.run(["sh", "-c", "kill -TERM $$"]) == -15
    with open(os.devnull, "wb") as null:
        assert bpfemu.exec.run(["/nonexistent/command"], stderr=null) == 127


def test_the_kernel_can_be_inspected_afterwards(tmp_path):
    kernel = bpfemu.Kernel()
    status, out = run_py(tmp_path, """
        fd = create(1, 4, 8, 16)  # hash
        update(fd, b"\\1\\0\\0\\0", b"abcdefgh")
        pin(fd, "/sys/fs/bpf/kept")
        gone = create(2, 4, 4, 4)  # only an fd: freed when the process exits
        print(fd, gone, os.readlink("/proc/self/fd/%d" % fd))
    """, kernel=kernel)
    assert status == 0, out
    assert out.split()[2] == "anon_inode:bpf-map"
    live = kernel.objects("map")
    assert [(o.kind, o.holders) for o in live] == [("map", ["pin /sys/fs/bpf/kept"])]
    proc = kernel.spawn()
    fd = proc.bpf(uapi.BPF_OBJ_GET, uapi.make_attr(pathname=_cstr(b"/sys/fs/bpf/kept")))
    key, value = bytearray(b"\1\0\0\0"), bytearray(8)
    import ctypes
    kb = (ctypes.c_char * 4).from_buffer(key)
    vb = (ctypes.c_char * 8).from_buffer(value)
    proc.bpf(uapi.BPF_MAP_LOOKUP_ELEM, uapi.make_attr(map_fd=fd, key=ctypes.addressof(kb), value=ctypes.addressof(vb)))
    assert bytes(value) == b"abcdefgh"


def test_a_blocked_process_vm_readv_falls_back_to_proc_pid_mem(tmp_path):
    """Where a seccomp profile blocks process_vm_readv/writev (some containers), the supervisor reads and
    writes the served processes' memory through /proc/PID/mem: their calls are answered as usual (before,
    each one got ENOSYS, and a python linked against a shared libpython died in the dynamic loader:
    "libpython3.11.so.1.0: cannot open shared object file: Error 38"), and a bad pointer is still EFAULT."""
    from bpfemu import hostenv
    if not hostenv.process_vm_status()[0]:
        pytest.skip("process_vm_readv is blocked here already: %s" % hostenv.process_vm_status()[1])
    script = tmp_path / "target.py"
    script.write_text(TARGET_HEAD + textwrap.dedent("""
        fd = create(1, 4, 8, 16)
        update(fd, b"\\1\\0\\0\\0", b"abcdefgh")
        try:
            bpf(1, struct.pack("<IIQQQ", fd, 0, 8, 8, 0))
        except OSError as e:
            bad = e.errno
        print(lookup(fd, b"\\1\\0\\0\\0", 8).decode(), bad)
    """))
    supervisor = textwrap.dedent("""
        import json, os, subprocess, sys
        import bpfemu, bpfemu.exec
        from bpfemu import hostenv
        with open(sys.argv[2], "wb") as f:
            status = bpfemu.exec.run([sys.executable, sys.argv[1]], stdout=f, stderr=subprocess.STDOUT)
        print(json.dumps([hostenv.process_vm_status()[0], status, open(sys.argv[2]).read()]))
    """)
    blocker = textwrap.dedent("""
        import os, sys
        from bpfemu.testing.support import block_process_vm
        block_process_vm()
        os.execv(sys.executable, [sys.executable, "-c"] + sys.argv[1:])
    """)
    r = subprocess.run([sys.executable, "-c", blocker, supervisor, str(script), str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    import json
    blocked_ok, status, out = json.loads(r.stdout.strip().splitlines()[-1])
    assert blocked_ok is False  # the supervisor really ran without process_vm_readv
    assert (status, out.split()) == (0, ["abcdefgh", "14"]), out


_keep = []


def _cstr(b):
    import ctypes
    buf = ctypes.create_string_buffer(b)
    _keep.append(buf)
    return ctypes.addressof(buf)


def test_fds_follow_close_dup_fork_and_exec(tmp_path):
    kernel = bpfemu.Kernel()
    status, out = run_py(tmp_path, """
        fd = create(2, 4, 4, 4)
        first = next_id(0)
        d = os.dup(fd)
        os.close(fd)
        print("after close of one of two fds:", next_id(0) == first)
        pid = os.fork()
        if pid == 0:
            update(d, b"\\0\\0\\0\\0", b"kid!")
            os._exit(0)
        os.waitpid(pid, 0)
        print("child's update:", lookup(d, b"\\0\\0\\0\\0", 4))
        os.close(d)
        try:
            next_id(0)
            print("still there")
        except OSError as e:
            print("after the last close:", errno.errorcode[e.errno])
    """, kernel=kernel)
    assert status == 0, out
    assert out.splitlines() == ["after close of one of two fds: True", "child's update: b'kid!'",
                                "after the last close: ENOENT"]
    assert kernel.objects() == []


def test_errors_come_back_as_errno(tmp_path):
    status, out = run_py(tmp_path, """
        r = libc.syscall(321, 0, ctypes.c_void_p(16), 64)
        print("bad attr pointer:", errno.errorcode[ctypes.get_errno()], r)
        for args in [(1, 4, 4, 0), (2, 8, 4, 4)]:
            try:
                create(*args)
            except OSError as e:
                print("create", args, errno.errorcode[e.errno])
        try:
            bpf(1, struct.pack("<I", 77))
        except OSError as e:
            print("lookup on a closed fd:", errno.errorcode[e.errno])
        try:
            bpf(1, struct.pack("<I", 0))
        except OSError as e:
            print("lookup on stdin:", errno.errorcode[e.errno])
    """)
    assert status == 0, out
    assert out.splitlines() == ["bad attr pointer: EFAULT -1", "create (1, 4, 4, 0) EINVAL", "create (2, 8, 4, 4) EINVAL",
                                "lookup on a closed fd: EBADF", "lookup on stdin: EINVAL"]


def test_emulated_credentials(tmp_path):
    kernel = bpfemu.Kernel(unprivileged_bpf_disabled=2)
    status, out = run_py(tmp_path, """
        try:
            create(1, 4, 4, 4)
        except OSError as e:
            print(errno.errorcode[e.errno])
    """, kernel=kernel, uid=1000)
    assert (status, out) == (0, "EPERM\n")


def test_ncpus_and_mounts_as_the_process_sees_them(tmp_path):
    status, out = run_py(tmp_path, """
        print(open("/sys/devices/system/cpu/possible").read().strip())
        print([l.split()[:3] for l in open("/proc/mounts") if " bpf " in l])
        import ctypes.util
        buf = ctypes.create_string_buffer(120)
        libc.statfs(b"/sys/fs/bpf", buf)
        print(hex(struct.unpack_from("<q", buf)[0]))
    """, kernel=bpfemu.Kernel(ncpus=5))
    assert status == 0, out
    assert out.splitlines() == ["0-4", "[['bpf', '/sys/fs/bpf', 'bpf']]", "0xcafe4a11"]


def test_mmap_shares_the_values_both_ways(tmp_path):
    kernel = bpfemu.Kernel()
    status, out = run_py(tmp_path, """
        import mmap
        fd = create(2, 4, 8, 4, 0x400)  # BPF_F_MMAPABLE
        m = mmap.mmap(fd, 4096)
        m[8:16] = b"fromproc"
        print(lookup(fd, b"\\1\\0\\0\\0", 8))
        update(fd, b"\\2\\0\\0\\0", b"fromemu!")
        print(m[16:24])
        pin(fd, "/sys/fs/bpf/mm")
    """, kernel=kernel)
    assert status == 0, out
    assert out.splitlines() == ["b'fromproc'", "b'fromemu!'"]
    (m,) = [o.obj for o in kernel.objects("map")]
    assert m.lookup(b"\1\0\0\0") == b"fromproc"


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
def test_an_unprivileged_process_gets_the_emulated_privileges():
    import pathlib
    import tempfile
    tmp_path = pathlib.Path(tempfile.mkdtemp(prefix="bpfemu-exec-"))  # pytest's tmp_path is root's only
    os.chmod(tmp_path, 0o755)
    script = tmp_path / "t.py"
    script.write_text(TARGET_HEAD + "print(os.getuid(), create(1, 4, 4, 4) > 2)\n")
    os.chmod(script, 0o644)
    out = tmp_path / "out"
    with open(out, "wb") as f:
        status = bpfemu.exec.run(["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", "--inh-caps=-all",
                                  "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable,
                                  str(script)], stdout=f, stderr=subprocess.STDOUT, cwd=str(tmp_path))
    text = out.read_text()
    shutil.rmtree(tmp_path)
    assert (status, text) == (0, "1000 True\n")


def test_cli_returns_the_status():
    from bpfemu.__main__ import main
    assert main(["exec", "--ncpus", "3", "--", "sh", "-c", "test \"$(cat /sys/devices/system/cpu/possible)\" = 0-2"]) == 0
    assert main(["exec", "--", "sh", "-c", "exit 4"]) == 4


# -- --state-dir: one kernel kept alive by a daemon between runs ----------------------------------------
@pytest.fixture
def state_dir(tmp_path):
    from bpfemu.exec import daemon
    d = tmp_path / "state"
    yield d
    daemon.stop(str(d))


def test_state_dir_keeps_the_kernel_between_runs(tmp_path, state_dir):
    from bpfemu.exec import daemon
    assert daemon.info(str(state_dir)) is None
    status, out = run_py(tmp_path, """
        fd = create(1, 4, 8, 16)  # hash, pinned: it outlives this process
        update(fd, b"\\1\\0\\0\\0", b"abcdefgh")
        pin(fd, "/sys/fs/bpf/kept")
        os.mkdir("/sys/fs/bpf/dir")
        gone = create(2, 4, 4, 4)  # only an fd: freed when this process exits
        print(next_id(0), next_id(next_id(0)))
    """, state_dir=state_dir, ncpus=3)
    assert status == 0, out
    kept_id, gone_id = map(int, out.split())
    assert daemon.info(str(state_dir))["ncpus"] == 3
    status, out = run_py(tmp_path, """
        fd = obj_get("/sys/fs/bpf/kept")
        print(lookup(fd, b"\\1\\0\\0\\0", 8))
        print(next_id(0))
        try:
            next_id(next_id(0))
        except OSError as e:
            print(errno.errorcode[e.errno])
        print(create(2, 4, 4, 4) > 2, next_id(next_id(0)))
        print(sorted(os.listdir("/sys/fs/bpf")))
    """, state_dir=state_dir)
    assert status == 0, out
    lines = out.splitlines()
    assert lines[:3] == ["b'abcdefgh'", str(kept_id), "ENOENT"]
    assert lines[3] == "True %d" % (gone_id + 1)  # ids go on from where the last run left them
    assert lines[4] == "['dir', 'kept', 'maps.debug', 'progs.debug']"
    with pytest.raises(OSError) as e:
        bpfemu.exec.run(["true"], state_dir=state_dir, ncpus=4)
    assert e.value.errno == 22
    with pytest.raises(ValueError):
        bpfemu.exec.run(["true"], state_dir=state_dir, kernel=bpfemu.Kernel())
    assert daemon.stop(str(state_dir))
    assert daemon.info(str(state_dir)) is None
    assert not (state_dir / "kernel.sock").exists()
    status, out = run_py(tmp_path, 'print(sorted(os.listdir("/sys/fs/bpf")))', state_dir=state_dir)
    assert (status, out) == (0, "['maps.debug', 'progs.debug']\n")  # a new daemon, a new kernel


def test_state_dir_serves_runs_at_the_same_time(tmp_path, state_dir):
    # the first run waits, holding its map, until the second has seen the pin it made
    ready = tmp_path / "ready"
    script = tmp_path / "first.py"
    script.write_text(TARGET_HEAD + textwrap.dedent("""
        import time
        fd = create(1, 4, 4, 4)
        update(fd, b"\\7\\0\\0\\0", b"seen")
        pin(fd, "/sys/fs/bpf/shared")
        open(sys.argv[1], "w").close()
        while os.path.exists(sys.argv[1]):
            time.sleep(0.01)
        print(lookup(fd, b"\\7\\0\\0\\0", 4))
    """))
    import threading
    result = {}

    def first():
        with open(tmp_path / "first.out", "wb") as f:
            result["first"] = bpfemu.exec.run([sys.executable, str(script), str(ready)], state_dir=state_dir, stdout=f)

    t = threading.Thread(target=first)
    t.start()
    try:
        for _ in range(2000):
            if ready.exists():
                break
            import time
            time.sleep(0.01)
        status, out = run_py(tmp_path, """
            fd = obj_get("/sys/fs/bpf/shared")
            print(lookup(fd, b"\\7\\0\\0\\0", 4))
            update(fd, b"\\7\\0\\0\\0", b"both")
        """, state_dir=state_dir)
    finally:
        if ready.exists():
            ready.unlink()
        t.join(60)
    assert (status, out) == (0, "b'seen'\n")
    assert result["first"] == 0
    assert (tmp_path / "first.out").read_text() == "b'both'\n"


def test_cli_state_dir_and_stop(tmp_path):
    from bpfemu.__main__ import main
    d = str(tmp_path / "state")
    try:
        assert main(["exec", "--state-dir", d, "--", "mkdir", "/sys/fs/bpf/x"]) == 0
        assert main(["exec", "--state-dir", d, "--", "test", "-d", "/sys/fs/bpf/x"]) == 0
        assert main(["exec", "--state-dir", d, "--", "sh", "-c", "exit 3"]) == 3
    finally:
        assert main(["exec", "--state-dir", d, "--stop"]) == 0
    assert main(["exec", "--state-dir", d, "--", "test", "-d", "/sys/fs/bpf/x"]) == 1
    assert main(["exec", "--state-dir", d, "--stop"]) == 0
