"""bpfemu.Object (bpfemu/libbpf): what libbpf's conventions make of an object file, on small C programs
compiled here with clang, loaded on the emulator (and on the host where a program needs what the emulator's
verifier does not have yet: kfuncs).

Section names, several programs in one section, subprograms appended per program, callbacks, autoload
off with ``SEC("?...")``, maps of maps and program arrays with initial slots, custom data sections, legacy
``maps``, CO-RE relocations of every kind clang 14 emits (checked against the kernel BTF directly, and
poisoning), ``__ksym`` kfuncs and ``__kconfig`` externs, and the errors of bad objects.
"""
import errno

import pytest

import bpfemu
from bpfemu import Object, uapi as U
from bpfemu.btf import uapi as BU
from bpfemu.libbpf import ObjectError, ObjectFormatError, find_sec_def, relo_core
from bpfemu.libbpf.elf import LIBBPF_ERRNO__FORMAT
from bpfemu.testing import bpf_objects as B
from bpfemu.testing.backends import need_host

HDR = "#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n#include <bpf/bpf_core_read.h>\n"
LICENSE = '\nchar LICENSE[] SEC("license") = "GPL";\n'


def build(name, body):
    B.require_clang()
    return B.compile_source(HDR + body + LICENSE, name)


@pytest.fixture
def task():
    return bpfemu.Kernel().spawn()


# -- section names ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("sec,ptype,eat", [
    ("socket", "SOCKET_FILTER", 0),
    ("xdp", "XDP", "BPF_XDP"),
    ("xdp.frags", "XDP", "BPF_XDP"),
    ("xdp/devmap", "XDP", "BPF_XDP_DEVMAP"),
    ("tc", "SCHED_CLS", 0),
    ("tc/ingress", "SCHED_CLS", "BPF_TCX_INGRESS"),
    ("kprobe/do_sys_open", "KPROBE", 0),
    ("kretprobe/do_sys_open", "KPROBE", 0),
    ("tracepoint/syscalls/sys_enter_openat", "TRACEPOINT", 0),
    ("raw_tracepoint/sys_enter", "RAW_TRACEPOINT", 0),
    ("raw_tp", "RAW_TRACEPOINT", 0),
    ("fentry/do_unlinkat", "TRACING", "BPF_TRACE_FENTRY"),
    ("tp_btf/sched_switch", "TRACING", "BPF_TRACE_RAW_TP"),
    ("lsm/file_open", "LSM", "BPF_LSM_MAC"),
    ("iter/task", "TRACING", "BPF_TRACE_ITER"),
    ("cgroup_skb/ingress", "CGROUP_SKB", "BPF_CGROUP_INET_INGRESS"),
    ("cgroup/connect4", "CGROUP_SOCK_ADDR", "BPF_CGROUP_INET4_CONNECT"),
    ("cgroup/sock", "CGROUP_SOCK", "BPF_CGROUP_INET_SOCK_CREATE"),
    ("sk_msg", "SK_MSG", "BPF_SK_MSG_VERDICT"),
    ("syscall", "SYSCALL", 0),
    ("?xdp", "XDP", "BPF_XDP"),
])
def test_section_defs(sec, ptype, eat):
    d = find_sec_def(sec)
    assert d.prog_type == getattr(U, "BPF_PROG_TYPE_" + ptype)
    assert d.expected_attach_type == (getattr(U, eat) if eat else 0)


@pytest.mark.parametrize("sec", ["kprobex", "tcx", "xdp/other", "socket/x", "cgroup_skb", "uprobe.sx", ""])
def test_unknown_sections(sec):
    """'type+' matches 'type' or 'type/...' only; other names match exactly."""
    assert find_sec_def(sec) is None


# -- programs, subprograms, maps -----------------------------------------------------------------------------

MULTI = r"""
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

struct inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} inner_a SEC(".maps"), inner_b SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 4);
	__type(key, __u32);
	__array(values, struct inner);
} outer SEC(".maps") = { .values = { [1] = &inner_a, [3] = &inner_b } };

int xdp_pass(struct xdp_md *ctx);
int xdp_drop(struct xdp_md *ctx);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, int (void *));
} jumps SEC(".maps") = { .values = { [0] = (void *)&xdp_pass, [1] = (void *)&xdp_drop } };

__u64 hits[4] SEC(".data.hits");
const char tag[] = "multi";

static long cb(__u32 i, void *sum)
{
	*(__u64 *)sum += i;
	return 0;
}

static __noinline int bump(__u32 k)
{
	__u64 *v = bpf_map_lookup_elem(&counts, &k);
	__u64 sum = 0;

	if (v)
		__sync_fetch_and_add(v, 1);
	bpf_loop(4, cb, &sum, 0);
	hits[k & 3] += sum;
	return k;
}

__noinline int global_helper(int x)
{
	return x * 2 + tag[0];
}

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	bump(0);
	return XDP_PASS;
}

SEC("xdp")
int xdp_drop(struct xdp_md *ctx)
{
	bump(1);
	return global_helper(0) ? XDP_DROP : XDP_PASS;
}

SEC("?tc")
int optional_tc(struct __sk_buff *skb)
{
	bpf_tail_call(skb, &jumps, 0);
	return bump(2);
}
"""


def test_programs_maps_and_slots(task):
    path = build("multi", MULTI)
    obj = Object.open(path)
    assert sorted(obj.programs) == ["optional_tc", "xdp_drop", "xdp_pass"]
    assert not obj.programs["optional_tc"].autoload          # SEC("?tc")
    assert obj.programs["optional_tc"].prog_type == U.BPF_PROG_TYPE_SCHED_CLS
    specs = obj.map_specs
    assert specs["outer"].init_slots == {1: "inner_a", 3: "inner_b"}
    assert specs["outer"].inner.type == U.BPF_MAP_TYPE_ARRAY and specs["outer"].value_size == 4
    assert specs["jumps"].init_slots == {0: "xdp_pass", 1: "xdp_drop"}
    assert ".data.hits" in specs and specs[".data.hits"].value_size == 32   # custom sections keep their name
    assert specs["multi.rodata"].map_flags == U.BPF_F_RDONLY_PROG | U.BPF_F_MMAPABLE
    with obj.load(task):
        assert sorted(obj.programs) == ["xdp_drop", "xdp_pass"]   # autoload off: not loaded
        for name in ("xdp_pass", "xdp_drop"):
            spec = obj.program_specs[name]
            own = len(spec.insns)
            # bump (and, for xdp_drop, global_helper) appended after the program, the callback after bump
            assert len(spec.loaded_insns) > own
            assert [fi[0] for fi in spec.func_info][0] == 0 and len(spec.func_info) == (3 if name == "xdp_pass"
                                                                                       else 4)
        assert obj.maps["outer"].lookup(1) == obj.maps["inner_a"].id   # fd maps read back ids
        assert obj.maps["outer"].lookup(3) == obj.maps["inner_b"].id
        with pytest.raises(FileNotFoundError):
            obj.maps["outer"].lookup(0)
        assert obj.maps["jumps"].lookup(1) == obj.programs["xdp_drop"].id
        assert obj.section(".data.hits").hits == [0, 0, 0, 0]


def test_load_only_once_and_close(task):
    path = build("multi", MULTI)
    obj = Object.open(path)
    obj.load(task)
    with pytest.raises(ObjectError) as e:
        obj.load(task)
    assert e.value.errno == errno.EINVAL
    obj.close()
    assert not obj.loaded and not task.kernel.objects()


LEGACY = r"""
struct bpf_map_def {
	unsigned int type, key_size, value_size, max_entries, map_flags;
};
struct bpf_map_def SEC("maps") legacy_hash = { BPF_MAP_TYPE_HASH, 4, 8, 16, 0 };
struct bpf_map_def SEC("maps") legacy_array = { BPF_MAP_TYPE_ARRAY, 4, 4, 2, 0 };

SEC("socket")
int use_legacy(struct __sk_buff *skb)
{
	__u32 k = 0;
	__u64 one = 1;

	bpf_map_update_elem(&legacy_hash, &k, &one, BPF_ANY);
	return bpf_map_lookup_elem(&legacy_array, &k) != 0;
}
"""


def test_legacy_maps(task):
    obj = Object.open(build("legacy", LEGACY))
    s = obj.map_specs
    assert (s["legacy_hash"].type, s["legacy_hash"].key_size, s["legacy_hash"].value_size,
            s["legacy_hash"].max_entries) == (U.BPF_MAP_TYPE_HASH, 4, 8, 16)
    with obj.load(task):
        assert obj.maps["legacy_array"].info().max_entries == 2
        assert obj.maps["legacy_hash"].info().btf_id == 0   # no BTF describes legacy maps
        ids = obj.programs["use_legacy"].info().map_ids
        assert sorted(ids) == sorted(m.id for m in obj.maps.values())


# -- CO-RE ---------------------------------------------------------------------------------------------------

CORE = r"""
struct bpf_map___local {
	__u32 max_entries;
	__u32 map_flags;
	__u32 no_such_field;
} __attribute__((preserve_access_index));

struct sk_buff___mine {
	__u8 pkt_type:3;
	__u32 len;
} __attribute__((preserve_access_index));

enum bpf_func_id___x { BPF_FUNC_map_lookup_elem___x = 7, BPF_FUNC_no_such___x = 8 };

__u64 out[16];

SEC("raw_tp/x")
int core(void *ctx)
{
	out[0] = bpf_core_field_offset(struct bpf_map___local, max_entries);
	out[1] = bpf_core_field_size(struct bpf_map___local, map_flags);
	out[2] = bpf_core_field_exists(struct bpf_map___local, no_such_field);
	out[3] = bpf_core_field_exists(struct bpf_map___local, map_flags);
	out[4] = bpf_core_enum_value(enum bpf_func_id___x, BPF_FUNC_map_lookup_elem___x);
	out[5] = bpf_core_enum_value_exists(enum bpf_func_id___x, BPF_FUNC_no_such___x);
	out[6] = bpf_core_type_size(struct sk_buff___mine);
	out[7] = bpf_core_field_offset(struct sk_buff___mine, len);
	out[8] = __builtin_preserve_field_info(((struct sk_buff___mine *)0)->pkt_type, BPF_FIELD_LSHIFT_U64);
	out[9] = __builtin_preserve_field_info(((struct sk_buff___mine *)0)->pkt_type, BPF_FIELD_RSHIFT_U64);
	out[10] = __builtin_preserve_field_info(((struct sk_buff___mine *)0)->pkt_type, BPF_FIELD_BYTE_OFFSET);
	out[11] = bpf_core_type_id_kernel(struct sk_buff___mine);
	out[12] = __builtin_preserve_field_info(((struct sk_buff___mine *)0)->len, BPF_FIELD_SIGNED);
	out[13] = bpf_core_type_exists(struct bpf_map___local);
	if (bpf_core_field_exists(struct bpf_map___local, no_such_field))
		out[14] = bpf_core_field_offset(struct bpf_map___local, no_such_field);
	return 0;
}

SEC("?raw_tp/y")
int unguarded(void *ctx)
{
	out[15] = bpf_core_field_offset(struct bpf_map___local, no_such_field);
	return 0;
}
"""


def _member(kb, struct_name, member):
    """(bit offset, bit size, member type id) of a member of a kernel struct, read from its BTF (through
    anonymous structs and unions)."""
    def walk(tid, base):
        t = kb.type_by_id(tid)
        for m in t.members:
            off = base + (m[2] & 0xffffff if t.kflag else m[2])
            name = kb.str_by_offset(m[0])
            if name == member.encode():
                return off, (m[2] >> 24 if t.kflag else 0), m[1]
            mt = kb.type_by_id(m[1])
            if not name and mt.kind in (BU.BTF_KIND_STRUCT, BU.BTF_KIND_UNION):
                r = walk(m[1], off)
                if r:
                    return r
        return None
    r = walk(kb.find_by_name_kind(struct_name, BU.BTF_KIND_STRUCT), 0)
    if r is None:
        raise KeyError(member)
    return r


def _core_values(obj, kb):
    """What each CO-RE relocation of the 'core' program resolved to: {(kind, local type, field or
    enumerator): {values}} (None: poisoned)."""
    local = obj.btf.btf()
    out = {}
    for _insn_off, tid, acc, kind in obj.btf_ext.core_relos["raw_tp/x"]:
        access = obj.btf.str_at(acc)
        spec = relo_core.parse_spec(local, tid, access, kind)
        what = spec.access[-1][2] if spec.access else None
        res = relo_core.resolve(local, kb, tid, access, kind)
        key = (relo_core.KINDS[kind], local.name(tid), what)
        out.setdefault(key, set()).add(None if res.poison else res.new)
    return out


def test_core_against_kernel_btf():
    from bpfemu.btf.vmlinux import vmlinux_btf
    kb = vmlinux_btf(fallback=False)
    if kb is None or kb.find_by_name_kind("sk_buff", BU.BTF_KIND_STRUCT) < 0:
        pytest.skip("no kernel BTF with struct sk_buff here (off Linux, or a kernel without BTF)")
    obj = Object.open(build("core", CORE))
    v = _core_values(obj, kb)
    pkt_bit, pkt_bits, _ = _member(kb, "sk_buff", "pkt_type")
    skb = kb.find_by_name_kind("sk_buff", BU.BTF_KIND_STRUCT)
    m, s = "bpf_map___local", "sk_buff___mine"
    expected = {
        ("byte_off", m, "max_entries"): {_member(kb, "bpf_map", "max_entries")[0] // 8},
        ("byte_sz", m, "map_flags"): {4},
        ("field_exists", m, "no_such_field"): {0},
        ("field_exists", m, "map_flags"): {1},
        ("enumval_value", "bpf_func_id___x", "BPF_FUNC_map_lookup_elem___x"): {U.BPF_FUNC_map_lookup_elem},
        ("enumval_exists", "bpf_func_id___x", "BPF_FUNC_no_such___x"): {0},
        ("type_size", s, None): {kb.type_by_id(skb).size},
        ("byte_off", s, "len"): {_member(kb, "sk_buff", "len")[0] // 8},
        ("target_type_id", s, None): {skb},
        ("signed", s, "len"): {0},
        ("type_exists", m, None): {1},
        ("byte_off", m, "no_such_field"): {None},   # guarded by bpf_core_field_exists: poisoned, never reached
    }
    for key, want in expected.items():
        assert v.pop(key) == want, key
    # the bitfield: the smallest load holding it, and the shifts that extract it from a u64
    (off,) = v.pop(("byte_off", s, "pkt_type"))
    assert off * 8 <= pkt_bit and pkt_bit + pkt_bits <= off * 8 + 64
    assert v.pop(("lshift_u64", s, "pkt_type")) == {64 - (pkt_bit + pkt_bits - off * 8)}
    assert v.pop(("rshift_u64", s, "pkt_type")) == {64 - pkt_bits}
    assert not v


def test_core_poison_refused_only_when_reached(task):
    B.need_kernel_types(task, "bpf_map.max_entries", "sk_buff.len")
    obj = Object.open(build("core", CORE))
    with obj.load(task):
        pass   # 'core' guards its only poisoned instruction with bpf_core_field_exists
    obj = Object.open(build("core", CORE))
    obj.program_specs["unguarded"].autoload = True
    obj.program_specs["core"].autoload = False
    with pytest.raises(bpfemu.BpfError) as e:
        obj.load(task)
    assert e.value.errno == errno.EINVAL
    assert "invalid func unknown#195896080" in e.value.log   # the call libbpf poisons with
    assert not task.kernel.objects()


# -- externs ---------------------------------------------------------------------------------------------------

EXTERNS = r"""
struct task_struct { int pid; };
extern struct task_struct *bpf_task_from_pid(int pid) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;
extern int bpf_no_such_kfunc(void) __ksym __weak;
extern unsigned int LINUX_KERNEL_VERSION __kconfig;
extern int CONFIG_NO_SUCH_OPTION __kconfig __weak;

__u32 version, missing;

SEC("syscall")
int find_init(void *ctx)
{
	struct task_struct *t = bpf_task_from_pid(1);

	version = LINUX_KERNEL_VERSION;
	missing = CONFIG_NO_SUCH_OPTION;
	if (t)
		bpf_task_release(t);
	if (bpf_no_such_kfunc)
		return bpf_no_such_kfunc();
	return 0;
}
"""


def test_externs_relocated(task):
    """kfuncs become kfunc calls to their kernel BTF id (an unresolved weak one a call to 0), kconfig values
    come from a frozen .kconfig map. The emulator's verifier refuses kfuncs for now: the instructions are
    checked, the load itself on the host."""
    B.need_kernel_types(task, "bpf_task_from_pid", "bpf_task_release")
    obj = Object.open(build("externs", EXTERNS))
    assert sorted((e.name, e.kind) for e in obj.externs) == [
        ("CONFIG_NO_SUCH_OPTION", "kconfig"), ("LINUX_KERNEL_VERSION", "kconfig"),
        ("bpf_no_such_kfunc", "kfunc"), ("bpf_task_from_pid", "kfunc"), ("bpf_task_release", "kfunc")]
    kconfig = obj.map_specs["externs.kconfig"]
    assert kconfig.map_flags == U.BPF_F_RDONLY_PROG | U.BPF_F_MMAPABLE and kconfig.value_size == 8
    try:
        obj.load(task)
    except bpfemu.BpfError as e:
        assert "calling kernel function bpf_task_from_pid is not allowed" in e.log
    else:
        obj.close()
    kb = task.kernel.btf_vmlinux.btf
    calls = [i for i in obj.program_specs["find_init"].loaded_insns if i[0] == 0x85]
    want = [kb.find_by_name_kind(n, BU.BTF_KIND_FUNC) for n in ("bpf_task_from_pid", "bpf_task_release")]
    assert [(c[2], c[4]) for c in calls] == [(2, want[0]), (2, want[1]), (2, 0)]


def test_externs_load_on_host():
    need_host()
    h = bpfemu.Host().spawn()
    try:
        with Object.open(build("externs", EXTERNS)).load(h) as obj:
            assert obj.programs["find_init"].test_run().retval == 0
            import os
            rel = [int("".join(c for c in x if c.isdigit()) or 0) for x in os.uname().release.split("-")[0].split(".")]
            assert obj.bss.version == (rel[0] << 16) | (rel[1] << 8) | min(rel[2], 255)
            assert obj.bss.missing == 0
            assert obj.kconfig.LINUX_KERNEL_VERSION == obj.bss.version
    finally:
        h.exit()


def test_incompatible_kfunc_prototype(task):
    """libbpf's check of a kfunc's prototype: a forward-declared struct is not the kernel's struct."""
    B.need_kernel_types(task, "bpf_task_from_pid")
    obj = Object.open(build("fwd_kfunc", EXTERNS.replace("struct task_struct { int pid; };", "struct task_struct;")))
    with pytest.raises(ObjectError) as e:
        obj.load(task)
    assert e.value.errno == errno.EINVAL and "incompatible with vmlinux" in str(e.value)


# -- bad objects -------------------------------------------------------------------------------------------

def test_not_an_elf():
    with pytest.raises(ObjectFormatError) as e:
        Object.from_bytes(b"\x7fELF but not really")
    assert e.value.errno == LIBBPF_ERRNO__FORMAT


def test_static_program_in_a_program_section():
    path = build("static_prog", 'SEC("xdp") static int hidden(struct xdp_md *c) { return 2; }\n'
                                'SEC("xdp") int shown(struct xdp_md *c) { return hidden(c); }\n')
    with pytest.raises(ObjectError) as e:
        Object.open(path)
    assert e.value.errno == errno.ENOTSUP and "static" in str(e.value)


def test_unknown_section_fails_at_load(task):
    obj = Object.open(build("odd_section", 'SEC("no_such_type") int p(void *c) { return 0; }\n'))
    assert obj.programs["p"].prog_type == 0
    with pytest.raises(ObjectError) as e:
        obj.load(task)
    assert e.value.errno == errno.EINVAL and "missing BPF prog type" in str(e.value)
    assert not task.kernel.objects()   # nothing left behind


def test_failed_load_leaves_nothing(task):
    """A program the verifier refuses: the maps created and pinned on the way are unpinned and closed."""
    path = build("pinned_bad", r"""
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pinned SEC(".maps");

SEC("xdp")
int bad(struct xdp_md *ctx)
{
	__u32 k = 0, *v = bpf_map_lookup_elem(&pinned, &k);

	return *v;   /* no NULL check: refused */
}
""")
    with pytest.raises(bpfemu.BpfError) as e:
        Object.open(path).load(task)
    assert e.value.errno == errno.EACCES and "invalid mem access 'map_value_or_null'" in e.value.log
    assert not task.kernel.objects()
    with pytest.raises(FileNotFoundError):
        task.stat("/sys/fs/bpf/pinned")
