"""bpfemu.VM: the pieces (frames, initramfs, kernel cache, errors) always; a booted guest where it can be.

The guest tests boot one VM for the module, of ``BPFEMU_TEST_VM_KERNEL`` (default 6.12). They
skip with the reason when QEMU, a static busybox or the cached kernel is missing
(``tools/fetch_kernels.py`` fetches it), and fail instead under ``BPFEMU_REQUIRE_VM=1``.
"""
import ctypes
import errno
import os
import struct

import pytest

import bpfemu
from bpfemu import uapi as u
from bpfemu.host.task import HostTask
from bpfemu.host.vm import VM, VMError, kernels, launcher, machine, wire

KERNEL = os.environ.get("BPFEMU_TEST_VM_KERNEL", "6.12")


# -- no guest needed ----------------------------------------------------------------

def test_frames_survive_any_chunking():
    frames = [(0, b"\x80control", []), (3, b"x" * 70000, [1, 2]), (5, b"", []), (3, b"tail", [9])]
    stream = b"".join(wire.encode(*f) for f in frames)
    for step in (1, 7, 4096, len(stream)):
        r = wire.Reader()
        got = []
        for i in range(0, len(stream), step):
            r.feed(stream[i:i + step])
            got += list(r.frames())
        assert got == frames


def _read_cpio(data):
    out, pos = {}, 0
    while True:
        hdr = data[pos:pos + 110].decode()
        assert hdr[:6] == "070701"
        f = [int(hdr[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = f[1], f[6], f[11]
        pos += 110
        name = data[pos:pos + namesize - 1].decode()
        pos = (pos + namesize + 3) // 4 * 4
        body = data[pos:pos + size]
        pos = (pos + size + 3) // 4 * 4
        if name == "TRAILER!!!":
            return out
        out[name] = (mode, body, (f[9], f[10]))


def test_cpio_holds_files_dirs_and_device_nodes():
    c = launcher.Cpio()
    c.dir("bin")
    c.file("bin/x", b"abcde", 0o755)
    c.chardev("dev/console", 5, 1)
    got = _read_cpio(c.finish())
    assert got["bin"][0] == 0o040755
    assert got["bin/x"][:2] == (0o100755, b"abcde")
    assert got["dev/console"][0] == 0o020600 and got["dev/console"][2] == (5, 1)


def test_static_busybox_check(tmp_path):
    script = tmp_path / "sh"
    script.write_text("#!/bin/sh\n")
    assert not launcher._is_static(str(script))
    assert not launcher._is_static("/bin/sh" if os.path.exists("/bin/sh") else str(script))  # dynamic


@pytest.mark.bpf_needs_linux("the VM backend (QEMU running this host's Python over 9p); off Linux machine.available says not Linux first")
def test_a_missing_kernel_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("BPFEMU_CACHE", str(tmp_path))
    assert kernels.cached("6.1") is None
    ok, why = machine.available("6.1")
    assert not ok and ("fetch_kernels.py" in why or "not found" in why or "busybox" in why)
    with pytest.raises(VMError, match="fetch_kernels.py 6.1"):
        VM(kernel="6.1")
    with pytest.raises(kernels.KernelUnavailable, match="no pinned kernel"):
        kernels.fetch("2.6")


@pytest.mark.bpf_needs_linux("the VM backend (QEMU running this host's Python over 9p); off Linux machine.available says not Linux first")
def test_a_missing_qemu_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("BPFEMU_QEMU", "/nonexistent/qemu")
    ok, why = machine.available(KERNEL)
    assert not ok and "qemu-system-x86" in why


def test_the_vm_has_the_surface_of_host():
    public = {n for n in dir(bpfemu.Host) if not n.startswith("_")} - {"bpffs"}
    assert public <= {n for n in dir(VM) if not n.startswith("_")}
    task_public = {n for n in dir(HostTask) if not n.startswith("_")}
    assert task_public <= {n for n in dir(machine.VMTask) if not n.startswith("_")}


# -- a booted guest -------------------------------------------------------------------

@pytest.fixture(scope="module")
def vm():
    ok, why = machine.available(KERNEL)
    if not ok:
        if os.environ.get("BPFEMU_REQUIRE_VM") == "1":
            pytest.fail("BPFEMU_REQUIRE_VM=1 but the %s VM cannot run: %s" % (KERNEL, why))
        pytest.skip("the %s VM cannot run here: %s" % (KERNEL, why))
    v = VM(kernel=KERNEL)
    v.mount_bpffs()
    yield v
    v.shutdown()
    assert v._launch is None


def create(task, map_type=u.BPF_MAP_TYPE_HASH, key_size=4, value_size=8, max_entries=16, **kw):
    return task.bpf(u.BPF_MAP_CREATE, u.make_attr(map_type=map_type, key_size=key_size, value_size=value_size,
                                                  max_entries=max_entries, **kw))


def elem(task, cmd, fd, key, value):
    return task.bpf(cmd, u.make_attr(map_fd=fd, key=ctypes.addressof(key), value=ctypes.addressof(value)))


def test_guest_runs_the_pinned_kernel(vm):
    assert vm.release == kernels.cached(KERNEL).release
    assert vm.release.startswith(KERNEL + ".")


def test_values_travel_both_ways(vm):
    fd = create(vm)
    k, v, out = ctypes.c_uint32(7), ctypes.c_uint64(0x1122334455667788), ctypes.c_uint64(0)
    elem(vm, u.BPF_MAP_UPDATE_ELEM, fd, k, v)
    elem(vm, u.BPF_MAP_LOOKUP_ELEM, fd, k, out)
    assert out.value == v.value
    with pytest.raises(OSError) as e:
        elem(vm, u.BPF_MAP_LOOKUP_ELEM, fd, ctypes.c_uint32(8), out)
    assert e.value.errno == errno.ENOENT
    bad = u.make_attr(map_fd=fd, key=8, value=ctypes.addressof(out))  # a pointer into the null page
    with pytest.raises(OSError) as e:
        vm.bpf(u.BPF_MAP_LOOKUP_ELEM, bad)
    assert e.value.errno == errno.EFAULT
    vm.close(fd)


def test_info_is_written_into_our_memory(vm):
    fd = create(vm, max_entries=33)
    info = u.bpf_map_info()
    a = u.make_attr(**{"info.bpf_fd": fd, "info.info_len": ctypes.sizeof(info), "info.info": ctypes.addressof(info)})
    vm.bpf(u.BPF_OBJ_GET_INFO_BY_FD, a)
    assert (info.type, info.key_size, info.value_size, info.max_entries) == (u.BPF_MAP_TYPE_HASH, 4, 8, 33)
    assert a.info.info_len <= ctypes.sizeof(info) and info.id > 0
    vm.close(fd)


def test_unprivileged_task_and_fd_passing(vm):
    fd = create(vm)
    un = vm.spawn(uid=1000, caps=())
    with pytest.raises(OSError) as e:
        create(un)
    assert e.value.errno == errno.EPERM
    [got] = vm.send_fds(un, [fd])
    assert got in un.fds()
    k, v, out = ctypes.c_uint32(1), ctypes.c_uint64(5), ctypes.c_uint64(0)
    elem(vm, u.BPF_MAP_UPDATE_ELEM, fd, k, v)
    elem(un, u.BPF_MAP_LOOKUP_ELEM, got, k, out)
    assert out.value == 5
    with pytest.raises(OSError) as e:
        vm.send_fds(bpfemu.Kernel().spawn(), [fd])
    assert e.value.errno == errno.EXDEV
    un.exit()
    vm.close(fd)


def test_fork_inherits_fds(vm):
    fd = create(vm)
    child = vm.fork()
    assert fd in child.fds() and child.pid != vm.main.pid
    child.close(fd)
    assert fd not in child.fds() and fd in vm.fds()
    child.exit()
    vm.close(fd)


def test_bpffs_operations(vm):
    fd = create(vm)
    root = vm.bpffs
    path = ctypes.create_string_buffer((root + "/m").encode())
    vm.bpf(u.BPF_OBJ_PIN, u.make_attr(bpf_fd=fd, pathname=ctypes.addressof(path)))
    vm.mkdir(root + "/d")
    vm.rename(root + "/m", root + "/d/m")
    assert "d" in vm.listdir(root) and vm.listdir(root + "/d") == ["m"]
    assert vm.statfs(root).f_type == u.BPF_FS_MAGIC
    assert vm.stat(root + "/d/m").st_mode & 0o170000 == 0o100000
    vm.unlink(root + "/d/m")
    vm.rmdir(root + "/d")
    with pytest.raises(OSError) as e:
        vm.rmdir(root + "/d")
    assert e.value.errno == errno.ENOENT
    vm.close(fd)


def test_mmap_shares_the_guest_pages(vm):
    fd = create(vm, map_type=u.BPF_MAP_TYPE_ARRAY, value_size=8, max_entries=1024, map_flags=u.BPF_F_MMAPABLE)
    m = vm.mmap(fd, 8 * 1024)
    m[8 * 700:8 * 701] = struct.pack("<Q", 42)
    k, out = ctypes.c_uint32(700), ctypes.c_uint64(0)
    elem(vm, u.BPF_MAP_LOOKUP_ELEM, fd, k, out)
    assert out.value == 42
    elem(vm, u.BPF_MAP_UPDATE_ELEM, fd, ctypes.c_uint32(3), ctypes.c_uint64(9))
    assert m[24:32] == struct.pack("<Q", 9)
    with pytest.raises(OSError) as e:  # a writable mapping blocks freezing, as on any kernel
        vm.bpf(u.BPF_MAP_FREEZE, u.make_attr(map_fd=fd))
    assert e.value.errno == errno.EBUSY
    m.close()
    vm.bpf(u.BPF_MAP_FREEZE, u.make_attr(map_fd=fd))
    with pytest.raises(OSError) as e:
        vm.mmap(fd, 8 * 1024)
    assert e.value.errno == errno.EPERM
    vm.close(fd)


def test_more_tasks_than_task_ports(vm):
    """Every task port carries a task; past them, tasks talk through the agent."""
    tasks = [vm.spawn() for _ in range(len(vm._free_ports) + 3)]
    fd = create(vm)
    for t in tasks:
        [got] = vm.send_fds(t, [fd])
        assert got in t.fds()
    kinds = {type(t.sock).__name__ for t in tasks}
    assert kinds == {"PortChannel", "Channel"}
    for t in tasks:
        t.exit()
    vm.close(fd)


def test_each_host_of_the_vm_has_a_private_bpffs(vm):
    """As each bpfemu.Host() on the machine: the tasks of one VMHost share a fresh bpffs at /sys/fs/bpf that
    neither the VM's main task nor another VMHost's tasks see, and it goes with its last task."""
    h1, h2 = vm.host(), vm.host()
    a, b, c = h1.spawn(), h1.spawn(), h2.spawn()
    fd = create(a)
    path = ctypes.create_string_buffer(b"/sys/fs/bpf/m")
    a.bpf(u.BPF_OBJ_PIN, u.make_attr(bpf_fd=fd, pathname=ctypes.addressof(path)))
    assert "m" in b.listdir("/sys/fs/bpf")
    assert "m" not in c.listdir("/sys/fs/bpf") and "m" not in vm.listdir("/sys/fs/bpf")
    got = b.bpf(u.BPF_OBJ_GET, u.make_attr(pathname=ctypes.addressof(path)))
    assert got > 2
    for t in (a, b, c):
        t.exit()
    h1.close_namespace()
    h2.close_namespace()
    d = h1.spawn()  # a fresh namespace: nothing pinned there
    assert "m" not in d.listdir("/sys/fs/bpf")
    d.exit()


def test_a_dead_task_says_so(vm):
    t = vm.spawn()
    t.exit()
    with pytest.raises(OSError) as e:
        t.dup(0)
    assert e.value.errno == errno.ESRCH
