"""BTF objects in the emulator: the kernel's own BTF (id 1, loaded lazily, the fallback), ids, lifetimes,
kernel.objects()/describe()/check_invariants, and what only an emulated kernel can show (a sysctl the
host keeps set, the objects a map holds)."""
import errno
import os

import pytest

import bpfemu
from bpfemu import Map, check_invariants, uapi as u
from bpfemu.btf import Builder, vmlinux
from bpfemu.btf.object import BtfObject
from bpfemu.testing.support import btf_fd_by_id, btf_info, btf_load, create_map, err, get_next_id

BLOB = Builder().int("int", 4, signed=True).struct("bpf_spin_lock", [("v", "int")]).struct(
    "value", [("cnt", "int"), ("lock", "bpf_spin_lock")]).blob()


def test_a_fresh_kernel_has_its_btf_as_id_1_without_reading_it():
    k = bpfemu.Kernel()
    v = k.btf_vmlinux
    assert isinstance(v, BtfObject) and v.id == 1 and v.kernel_btf and v.name == b"vmlinux"
    assert not v.loaded
    p = k.spawn()
    assert get_next_id(p, 0, u.BPF_BTF_GET_NEXT_ID) == 1
    fd = btf_fd_by_id(p, 1)
    assert not v.loaded  # ids and fds do not read it
    assert btf_info(p, fd)[0].btf_size == v.data_size
    assert v.loaded


def test_loaded_btf_takes_the_next_ids_and_maps_do_not():
    k = bpfemu.Kernel()
    p = k.spawn()
    a = btf_load(p, BLOB)
    create_map(p, u.BPF_MAP_TYPE_ARRAY, 4, 4, 1)
    b = btf_load(p, BLOB)
    assert [btf_info(p, fd)[0].id for fd in (a, b)] == [2, 3]
    assert [o.id for o in k.objects("map")] == [1]


def test_fallback_vmlinux():
    k = bpfemu.Kernel(btf_vmlinux=None)
    p = k.spawn()
    fd = btf_fd_by_id(p, 1)
    info, blob, name = btf_info(p, fd, btf_size=1 << 16, name_len=8)
    assert blob[:info.btf_size] == vmlinux.fallback_blob() and name[:8] == b"vmlinux\0"
    assert k.btf_vmlinux.btf.find_by_name_kind("bpf_spin_lock", 4) > 0


@pytest.mark.bpf_needs_linux("the host's kernel BTF")
@pytest.mark.skipif(not os.path.exists(vmlinux.VMLINUX_PATH), reason="no /sys/kernel/btf/vmlinux")
def test_vmlinux_ids_are_the_hosts():
    k = bpfemu.Kernel()
    with open(vmlinux.VMLINUX_PATH, "rb") as f:
        assert k.btf_vmlinux.btf.raw_bytes() == f.read()


def _kptr_value_btf(target):
    """BTF of struct value { struct <target> __kptr *f; }, the struct left to the kernel's BTF."""
    b = Builder().int("int", 4, signed=True).struct(target, [], size=0)
    b.type_tag("kptr", target)
    b.ptr(b.last)
    return b.struct("value", [("f", b.last)]).blob()


def test_the_built_in_btf_names_what_loads_looked_for_in_vain():
    """A kernel on bpfemu's own BTF (off Linux) notes the kernel types looked up there and not found: what
    makes a program or a map behave otherwise than on Linux, in kernel.btf_vmlinux.not_described() and
    describe()."""
    k = bpfemu.Kernel(btf_vmlinux=None)
    p = k.spawn()
    assert k.btf_vmlinux.not_described() == [] and "kernel BTF" not in k.describe()
    for target in ("file", "task_struct", "file"):  # a kernel struct it lacks, one it has (kptr destructor)
        Map.create(p, "array", max_entries=1, btf=_kptr_value_btf(target), btf_key_type="int",
                   btf_value_type="value")
    assert k.btf_vmlinux.not_described() == ["struct file"]
    assert "kernel BTF: bpfemu's built-in one, which lacks what was looked up: struct file" in k.describe()
    assert bpfemu.Kernel(btf_vmlinux=None).btf_vmlinux.not_described() == []  # noted per kernel


@pytest.mark.bpf_needs_linux("the host's kernel BTF")
@pytest.mark.skipif(not os.path.exists(vmlinux.VMLINUX_PATH), reason="no /sys/kernel/btf/vmlinux")
def test_a_kernel_on_the_hosts_btf_notes_nothing():
    """On the host's BTF a name not found is not found on the host either: nothing to say."""
    k = bpfemu.Kernel()
    Map.create(k.spawn(), "array", max_entries=1, btf=_kptr_value_btf("no_such_struct"), btf_key_type="int",
               btf_value_type="value")
    assert k.btf_vmlinux.not_described() == [] and "kernel BTF" not in k.describe()


def test_objects_leave_out_the_kernels_own_btf_until_someone_holds_it():
    k = bpfemu.Kernel()
    assert k.objects() == []
    [s] = k.objects(built_in=True)
    assert (s.kind, s.id, s.holders) == ("btf", 1, ["the kernel (built in)"])
    p = k.spawn()
    fd = btf_fd_by_id(p, 1)
    [s] = k.objects()
    assert s.holders == ["the kernel (built in)", "fd %d of task %d" % (fd, p.pid)]
    p.close(fd)
    assert k.objects() == []
    check_invariants(k)


def test_a_map_holds_its_btf():
    k = bpfemu.Kernel()
    p = k.spawn()
    m = Map.create(p, "hash", max_entries=4, btf=BLOB, btf_key_type="int", btf_value_type="value")
    [b] = k.objects("btf")
    assert b.holders == ["map %d" % m.id]
    check_invariants(k)
    m.close()
    assert k.objects() == []
    check_invariants(k)


def test_a_failed_create_drops_the_btf_it_took():
    k = bpfemu.Kernel()
    p = k.spawn()
    fd = btf_load(p, BLOB)
    # the BTF is taken, then the value's spin lock is refused in a per-CPU map
    assert err(create_map, p, u.BPF_MAP_TYPE_PERCPU_HASH, 4, 8, 4, btf_fd=fd, btf_key_type_id=1,
               btf_value_type_id=3) == errno.EOPNOTSUPP
    [b] = k.objects("btf")
    assert b.refcnt == 1
    check_invariants(k)


def test_special_fields_need_cap_bpf():
    """With kernel.unprivileged_bpf_disabled=0 an unprivileged task may create maps, but not with special
    fields (the host keeps the sysctl set, so this is the emulator's alone)."""
    k = bpfemu.Kernel(unprivileged_bpf_disabled=0)
    root = k.spawn()
    fd = btf_load(root, BLOB)
    user = k.spawn(uid=1000, caps=())
    [ufd] = root.send_fds(user, [fd])
    assert err(create_map, user, u.BPF_MAP_TYPE_HASH, 4, 8, 4, btf_fd=ufd, btf_key_type_id=1,
               btf_value_type_id=3) == errno.EPERM
    assert err(create_map, user, u.BPF_MAP_TYPE_HASH, 4, 4, 4, btf_fd=ufd, btf_key_type_id=1,
               btf_value_type_id=1) == 0
    assert err(btf_load, user, BLOB) == errno.EPERM


def test_describe_shows_btf_objects_and_typed_values():
    k = bpfemu.Kernel()
    p = k.spawn()
    m = Map.create(p, "array", max_entries=2, btf=BLOB, btf_key_type="int", btf_value_type="value", name="vals")
    m[1] = b"\x05\0\0\0\xff\xff\xff\xff"
    text = k.describe()
    assert "0 progs, 0 links, 1 btf" in text
    assert "btf_id 2  key int  value struct value" in text
    assert "[1] = {cnt=5, lock={v=0}}" in text
    assert "2: btf  size %dB" % len(BLOB) in text and "held by map 1" in text
    btf_fd_by_id(p, 1)
    assert "1: btf  name vmlinux  kernel" in k.describe()


def test_inode_storage_keeps_values_per_inode():
    k = bpfemu.Kernel()
    p = k.spawn()
    b = Builder().int("int", 4, signed=True).int("long long", 8, signed=True)
    m = Map.create(p, "inode_storage", key_size=4, max_entries=0, flags=u.BPF_F_NO_PREALLOC,
                   btf=b.blob(), btf_key_type="int", btf_value_type="long long", value="q")
    other = create_map(p, u.BPF_MAP_TYPE_ARRAY, 4, 4, 1)
    m[other] = 7
    assert m[m.fd] == 7  # every bpf object shares the anonymous inode
    m[0] = 9  # the terminal is its own inode
    assert k.objects("map")[0].obj.count() == 2
    check_invariants(k)


def test_a_map_refused_by_the_memory_cgroup_drops_its_btf():
    k = bpfemu.Kernel(memory_limit=4096)
    p = k.spawn()
    fd = btf_load(p, BLOB)
    assert err(create_map, p, u.BPF_MAP_TYPE_ARRAY, 4, 8, 10000, btf_fd=fd, btf_key_type_id=1,
               btf_value_type_id=3) == errno.ENOMEM
    [b] = k.objects("btf")
    assert b.refcnt == 1
    check_invariants(k)
