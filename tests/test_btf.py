"""bpfemu.btf on its own: the Builder, the Btf lookups, the verifier log, special fields, the kernel BTF.

What BPF_BTF_LOAD answers is checked against the host in conformance/test_btf_*.py;
these tests cover the Python surface around it.
"""
import errno
import os

import pytest

from bpfemu.btf import Builder, BytesBuffer, VerifierLog, btf_parse, load
from bpfemu.btf import uapi as U
from bpfemu.btf import vmlinux as vm
from bpfemu.btf.btf import lazy_btf
from bpfemu.btf.fields import BPF_KPTR_REF, BPF_KPTR_UNREF, BPF_SPIN_LOCK, BPF_TIMER, parse_fields


def ints():
    return Builder().int("int", 4, signed=True).int("u64", 8).int("char", 1, char=True)


# -- Builder -------------------------------------------------------------------------------------

def test_builder_lays_out_like_a_compiler():
    b = ints().struct("s", [("c", "char"), ("x", "u64"), ("i", "int")])
    btf = btf_parse(b.blob())
    s = btf.type_by_id(btf.find_by_name_kind("s", U.BTF_KIND_STRUCT))
    assert s.size == 24
    assert [m[2] for m in s.members] == [0, 64, 128]


def test_builder_names_resolve_forward_and_strings_are_shared():
    b = ints().ptr("node").struct("node", [("next", 4), ("v", "int")]).typedef("node_t", "node")
    blob = b.blob()
    btf = btf_parse(blob)
    node = btf.find_by_name_kind("node", U.BTF_KIND_STRUCT)
    assert btf.type_by_id(4).type == node
    assert btf.size_of(btf.find_by_name_kind("node_t", U.BTF_KIND_TYPEDEF)) == 16
    assert b.string_section().count(b"\0node\0") == 1  # each name once
    assert b.add_str("node") == b.add_str(b"node")


def test_builder_bitfields_set_kind_flag():
    b = ints().struct("f", [("a", "int", 0, 3), ("b", "int", 3, 5)], size=4)
    btf = btf_parse(b.blob())
    f = btf.type_by_id(4)
    assert f.kflag == 1
    assert [(btf.member_bit_offset(f, m), btf.member_bitfield_size(f, m)) for m in f.members] == [(0, 3), (3, 5)]


def test_builder_header_overrides_and_raw_records():
    b = Builder().raw("x", U.BTF_INFO_ENC(U.BTF_KIND_INT, 0, 0), 4, U.BTF_INT_ENC(0, 0, 32))
    blob = b.blob(version=2, hdr_len=28, hdr_tail=bytes(4))
    magic, version, flags, hdr_len, type_off, type_len, str_off, str_len = U.HDR.unpack_from(blob)
    assert (magic, version, hdr_len, type_len, str_off) == (U.BTF_MAGIC, 2, 28, 16, 16)
    assert blob[28 + 16:] == b"\0x\0"


def test_builder_unknown_name_is_a_key_error():
    with pytest.raises(KeyError):
        ints().ptr("nope").blob()


# -- Btf lookups ---------------------------------------------------------------------------------

@pytest.fixture
def btf():
    b = (ints()
         .typedef("u64_t", "u64").const("u64_t").volatile(5)
         .array("int", 4).array(7, 3)
         .struct("s", [("a", "int"), ("arr", 8)])
         .ptr("s").func_proto("int", [("p", 10)]).func("f", 11, linkage=U.BTF_FUNC_GLOBAL)
         .enum("e", ["A", "B"]).var("g", "s").datasec(".data", ["g"]))
    return btf_parse(b.blob())


def test_lookups(btf):
    assert len(btf) == 16
    assert btf.type_by_id(0).kind == 0 and btf.type_by_id(16) is None
    assert btf.name(1) == "int" and btf.name(10) == ""
    assert btf.find_by_name_kind("s", U.BTF_KIND_STRUCT) == 9
    assert btf.find_by_name_kind("s", U.BTF_KIND_UNION) == -errno.ENOENT
    t, i = btf.skip_modifiers(6)
    assert (i, t.kind) == (2, U.BTF_KIND_INT)
    pointee, pid = btf.resolve_ptr(10)
    assert pid == 9 and pointee.kind == U.BTF_KIND_STRUCT
    assert list(btf.ids()) == list(range(1, 16))


def test_sizes(btf):
    assert btf.size_of(6) == 8  # volatile const u64_t
    assert btf.size_of(8) == 48  # int[4][3]
    assert btf.size_of(9) == 52
    assert btf.size_of(11) is None  # a func_proto has no size
    arr, total, elem, elem_id, n = btf.resolve_size(8)
    assert (total, elem_id, n, elem.size) == (48, 1, 12, 4)
    assert btf.type_id_size(14)[1:] == (9, 52)  # var g -> struct s


# -- btf_parse errors --------------------------------------------------------------------------------

def test_parse_error_carries_errno_and_cause():
    with pytest.raises(OSError) as e:
        btf_parse(ints().ptr(9).blob())
    assert e.value.errno == errno.EINVAL
    assert "[4] PTR (anon) type_id=9 Invalid type_id" in e.value.bpf_detail


def test_parse_reads_data_after_the_size_and_log_checks():
    calls = []

    def read():
        calls.append(1)
        raise OSError(errno.EFAULT, "bad address")

    with pytest.raises(OSError) as e:
        btf_parse(read, log=(32, None, 0), btf_size=10)
    assert e.value.errno == errno.EINVAL and not calls
    with pytest.raises(OSError) as e:
        btf_parse(read, btf_size=U.BTF_MAX_SIZE + 1)
    assert e.value.errno == errno.E2BIG and not calls
    with pytest.raises(OSError) as e:
        btf_parse(read, btf_size=10)
    assert e.value.errno == errno.EFAULT and calls


def test_true_size_is_written_back_even_on_error():
    seen = []
    with pytest.raises(OSError):
        btf_parse(ints().ptr(9).blob(), log=(1, BytesBuffer(4096), 4096), write_true_size=seen.append)
    assert seen and seen[0] > 100


def test_true_size_write_fault_is_efault():
    def fault(n):
        raise OSError(errno.EFAULT, "attr")

    with pytest.raises(OSError) as e:
        btf_parse(ints().blob(), log=(1, BytesBuffer(4096), 4096), write_true_size=fault)
    assert e.value.errno == errno.EFAULT


# -- the log -----------------------------------------------------------------------------------------

def test_log_message_is_cut_at_1023_bytes():
    log = VerifierLog.init(1, BytesBuffer(4096), 4096)
    log.vlog(b"x" * 2000)
    assert log.ubuf.text() == b"x" * 1023
    assert log.finalize() == (0, 1024)


def test_rotating_log_rotates_into_place():
    buf = BytesBuffer(8)
    log = VerifierLog.init(1, buf, 8)
    for chunk in (b"abc", b"defg", b"hijkl"):
        log.vlog(chunk)
    assert log.finalize() == (errno.ENOSPC, 13)
    assert buf.data == b"fghijkl\0"


def test_fixed_log_stops_when_full():
    buf = BytesBuffer(8)
    log = VerifierLog.init(1 | 8, buf, 8)
    for chunk in (b"abc", b"defg", b"hijkl"):
        log.vlog(chunk)
    assert log.finalize() == (errno.ENOSPC, 13)
    assert buf.data == b"abcdefg\0"


def test_log_write_fault_is_efault_at_finalize():
    class Faulty(BytesBuffer):
        def write(self, off, data):
            raise OSError(errno.EFAULT, "unmapped")

    log = VerifierLog.init(1, Faulty(64), 64)
    log.vlog(b"hello")
    assert log.finalize() == (errno.EFAULT, 6)


def test_load_convenience():
    btf, err, log, true_size = load(ints().blob(), log_size=4096)
    assert err == 0 and btf.nr_types == 4
    assert log.endswith(b"[3] INT char size=1 bits_offset=0 nr_bits=8 encoding=CHAR\n")
    assert true_size == len(log) + 1


# -- special fields ----------------------------------------------------------------------------------

def _value_btf(extra):
    b = (ints().struct("bpf_spin_lock", [("v", "int")]).struct("bpf_timer", [("a", "u64"), ("b", "u64")])
         .struct("task_struct", [("pid", "int")]).type_tag("kptr", "task_struct").ptr(7)
         .type_tag("kptr_untrusted", "task_struct").ptr(9)
         .struct("bpf_list_head", [("a", "u64"), ("b", "u64")]))
    extra(b)
    return btf_parse(b.blob(), vmlinux=None), b


def test_record_offsets_and_sorting():
    btf, b = _value_btf(lambda b: b.struct("val", [("cnt", "int"), ("lock", "bpf_spin_lock"),
                                                   ("t", "bpf_timer"), ("k", 8), ("u", 10)]))
    t = btf.type_by_id(btf.find_by_name_kind("val", U.BTF_KIND_STRUCT))
    rec = parse_fields(btf, t, BPF_SPIN_LOCK | BPF_TIMER | BPF_KPTR_REF | BPF_KPTR_UNREF, t.size, vmlinux=None)
    assert [(f.type, f.offset, f.size) for f in rec.fields] == [
        (BPF_SPIN_LOCK, 4, 4), (BPF_TIMER, 8, 16), (BPF_KPTR_REF, 24, 8), (BPF_KPTR_UNREF, 32, 8)]
    assert (rec.spin_lock_off, rec.timer_off) == (4, 8)
    assert rec.fields[2].kptr_btf is btf  # not in the kernel BTF given (none): a program-allocated type


def test_record_of_a_value_without_special_fields_is_none():
    btf, _ = _value_btf(lambda b: b.struct("plain", [("a", "int")]))
    t = btf.type_by_id(btf.find_by_name_kind("plain", U.BTF_KIND_STRUCT))
    assert parse_fields(btf, t, BPF_SPIN_LOCK, t.size) is None


def test_record_errors():
    btf, _ = _value_btf(lambda b: b.struct("two", [("a", "bpf_timer"), ("b", "bpf_timer")]))
    t = btf.type_by_id(btf.find_by_name_kind("two", U.BTF_KIND_STRUCT))
    with pytest.raises(OSError) as e:
        parse_fields(btf, t, BPF_TIMER, t.size)
    assert e.value.errno == errno.E2BIG
    with pytest.raises(OSError) as e:  # two spin locks in a struct: BPF_BTF_LOAD itself refuses the BTF
        _value_btf(lambda b: b.struct("two", [("a", "bpf_spin_lock"), ("b", "bpf_spin_lock")]))
    assert e.value.errno == errno.E2BIG and "special fields" in e.value.bpf_detail
    with pytest.raises(OSError) as e:  # a list head needs a "contains:" decl tag, at load already
        _value_btf(lambda b: b.struct("head", [("l", "bpf_spin_lock"), ("h", "bpf_list_head")]))
    assert e.value.errno == errno.EINVAL



def test_kptr_to_a_kernel_type_needs_a_destructor():
    kernel = vm.vmlinux_btf(path=None)  # bpfemu's own kernel BTF: task_struct has one, file does not
    btf, _ = _value_btf(lambda b: b.struct("val", [("k", 8)]))
    t = btf.type_by_id(btf.find_by_name_kind("val", U.BTF_KIND_STRUCT))
    rec = parse_fields(btf, t, BPF_KPTR_REF, t.size, vmlinux=kernel)
    f = rec.fields[0]
    assert f.kernel_kptr and f.kptr_btf is kernel and f.dtor == b"bpf_task_release_dtor"


# -- the kernel's BTF ----------------------------------------------------------------------------------

def test_fallback_kernel_btf_is_valid_and_describes_special_structs():
    assert load(vm.fallback_blob())[1] == 0
    k = vm.vmlinux_btf(path=None)
    for name, size in (("bpf_spin_lock", 4), ("bpf_timer", 16), ("bpf_list_node", 24), ("bpf_rb_node", 32)):
        assert k.size_of(k.find_by_name_kind(name, U.BTF_KIND_STRUCT)) == size
    assert k.kernel_btf and k.name_str == "vmlinux"


def test_kernel_btf_is_cached_and_lazy(tmp_path):
    p = tmp_path / "vmlinux"
    p.write_bytes(vm.fallback_blob())
    a = vm.vmlinux_btf(path=str(p))
    assert vm.vmlinux_btf(path=str(p)) is a
    assert a.types[5] is None  # records are decoded on first use
    assert a.type_by_id(5) is not None and a.types[5] is not None


def test_fallback_hook_adds_types(tmp_path):
    added = []

    def hook(b):
        b.struct("bpfemu_hook_test", [("x", "int")])
        added.append(1)

    vm.register_fallback_types(hook)
    try:
        k = vm.vmlinux_btf(path=str(tmp_path / "missing"))
        assert k.find_by_name_kind("bpfemu_hook_test", U.BTF_KIND_STRUCT) > 0 and added
    finally:
        vm._fallback_hooks.remove(hook)
        vm._cache.clear()


@pytest.mark.bpf_needs_linux("the host's kernel BTF")
@pytest.mark.skipif(not os.path.exists(vm.VMLINUX_PATH), reason="no /sys/kernel/btf/vmlinux here")
def test_host_kernel_btf_ids_match_the_file():
    k = vm.vmlinux_btf()
    raw = open(vm.VMLINUX_PATH, "rb").read()
    again = lazy_btf(raw)
    tid = k.find_by_name_kind("task_struct", U.BTF_KIND_STRUCT)
    assert tid > 0 and again.find_by_name_kind("task_struct", U.BTF_KIND_STRUCT) == tid
    assert k.size_of(k.find_by_name_kind("bpf_spin_lock", U.BTF_KIND_STRUCT)) == 4
    assert k.find_by_name_kind("bpf_task_release_dtor", U.BTF_KIND_FUNC) > 0


def test_kernel_creation_does_not_load_kernel_btf():
    import bpfemu
    vm._cache.clear()
    bpfemu.Kernel()
    assert not vm._cache
