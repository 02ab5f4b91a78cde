"""Measure the emulator's verifier on the kernel's verifier selftests, calling it directly.

Until BPF_PROG_LOAD is wired into the emulator's syscall layer, this runs each case of the corpus
(:mod:`conformance.corpus.verifier`) through :func:`bpfemu.prog.load.bpf_prog_load` with stand-in map objects
(only the map attributes the verifier reads: type, sizes, flags, special fields, inner map) and compares the
outcome (verdict, errno, the cause line as :func:`conformance.corpus.runner.cause` picks it) with the host's
recording, for the privileged and the unprivileged runs. Test runs are not compared.

    python tools/verifier_direct.py [--tree DIR] [-k TEXT] [--list] [--markdown] [--mode priv|unpriv|both]

Prints the agreement per file and overall, and the time the loads took.
"""
import argparse
import collections
import ctypes
import os
import re
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bpfemu import uapi as U  # noqa: E402
from bpfemu.prog.load import LoadContext, bpf_prog_load  # noqa: E402
from conformance.corpus import btfenc, kbtf, record  # noqa: E402
from conformance.corpus.progs import RECORD_PATH as PROGS_RECORD_PATH, load_progs_corpus  # noqa: E402
import btf_shim  # noqa: E402
from conformance.corpus.runner import _attach_prefix, cause  # noqa: E402
from conformance.corpus.verifier import RECORD_PATH, load_corpus  # noqa: E402

LOG_SIZE = 16 << 20


class StandInMap:
    """The attributes of struct bpf_map the verifier reads."""

    def __init__(self, map_type, key_size, value_size, max_entries, map_flags=0, record=(), inner=None,
                 btf=None, name=b""):
        self.map_type, self.key_size, self.value_size = map_type, key_size, value_size
        self.max_entries, self.map_flags = max_entries, map_flags
        self.record = list(record)
        self.inner_map_meta = inner
        self.btf = btf
        self.name = name
        self.frozen = False


NP = U.BPF_F_NO_PREALLOC


def _rec(value_type):
    return btf_record(btf_shim.load(btfenc.MAP_BTF), value_type)


H, A = U.BPF_MAP_TYPE_HASH, U.BPF_MAP_TYPE_ARRAY
MAPS = {
    "map_hash_8b": lambda: StandInMap(H, 8, 8, 1, NP),
    "map_hash_48b": lambda: StandInMap(H, 8, 48, 1, NP),
    "map_hash_16b": lambda: StandInMap(H, 8, 16, 1, NP),
    "map_array_48b": lambda: StandInMap(A, 4, 48, 1),
    "prog1": lambda: StandInMap(U.BPF_MAP_TYPE_PROG_ARRAY, 4, 4, 4),
    "prog2": lambda: StandInMap(U.BPF_MAP_TYPE_PROG_ARRAY, 4, 4, 8),
    "map_in_map": lambda: StandInMap(U.BPF_MAP_TYPE_ARRAY_OF_MAPS, 4, 4, 1, inner=StandInMap(A, 4, 4, 1)),
    "cgroup_storage": lambda: StandInMap(U.BPF_MAP_TYPE_CGROUP_STORAGE, 16, 64, 0),
    "percpu_cgroup_storage": lambda: StandInMap(U.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE, 16, 64, 0),
    "map_sockmap": lambda: StandInMap(U.BPF_MAP_TYPE_SOCKMAP, 4, 4, 1),
    "map_sockhash": lambda: StandInMap(U.BPF_MAP_TYPE_SOCKHASH, 4, 4, 1),
    "map_xskmap": lambda: StandInMap(U.BPF_MAP_TYPE_XSKMAP, 4, 4, 1),
    "map_stacktrace": lambda: StandInMap(U.BPF_MAP_TYPE_STACK_TRACE, 4, 8, 1),
    "map_spin_lock": lambda: StandInMap(A, 4, 8, 1, record=_rec(btfenc.SPIN_LOCK_VALUE), btf=True, name=b"test_map"),
    "map_array_ro": lambda: StandInMap(A, 4, 48, 1, U.BPF_F_RDONLY_PROG),
    "map_array_wo": lambda: StandInMap(A, 4, 48, 1, U.BPF_F_WRONLY_PROG),
    "map_array_small": lambda: StandInMap(A, 4, 1, 1),
    "sk_storage_map": lambda: StandInMap(U.BPF_MAP_TYPE_SK_STORAGE, 4, 8, 0, NP, record=_rec(btfenc.SPIN_LOCK_VALUE),
                                         btf=True, name=b"test_map"),
    "map_event_output": lambda: StandInMap(U.BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4, 4, 1),
    "map_reuseport_array": lambda: StandInMap(U.BPF_MAP_TYPE_REUSEPORT_SOCKARRAY, 4, 8, 1),
    "map_ringbuf": lambda: StandInMap(U.BPF_MAP_TYPE_RINGBUF, 0, 0, 4096),
    "map_timer": lambda: StandInMap(A, 4, 16, 1, record=_rec(btfenc.TIMER_VALUE), btf=True, name=b"test_map"),
    "map_kptr": lambda: StandInMap(A, 4, 24, 1, record=_rec(btfenc.KPTR_VALUE), btf=True, name=b"test_map"),
}
# what an unprivileged task cannot create: map types that need CAP_BPF/CAP_NET_ADMIN, and maps with BTF
# (BPF_BTF_LOAD needs CAP_BPF)
UNPRIV_MAPS = frozenset(U.MAP_TYPE_NAMES and (
    U.BPF_MAP_TYPE_ARRAY, U.BPF_MAP_TYPE_PERCPU_ARRAY, U.BPF_MAP_TYPE_PROG_ARRAY, U.BPF_MAP_TYPE_PERF_EVENT_ARRAY,
    U.BPF_MAP_TYPE_CGROUP_ARRAY, U.BPF_MAP_TYPE_ARRAY_OF_MAPS, U.BPF_MAP_TYPE_HASH, U.BPF_MAP_TYPE_PERCPU_HASH,
    U.BPF_MAP_TYPE_HASH_OF_MAPS, U.BPF_MAP_TYPE_RINGBUF, U.BPF_MAP_TYPE_USER_RINGBUF,
    U.BPF_MAP_TYPE_CGROUP_STORAGE, U.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE))
# array_map_alloc (arrays, per-CPU arrays and the fd arrays) records whether the creator bypasses Spectre v1
ARRAY_MAPS = frozenset((U.BPF_MAP_TYPE_ARRAY, U.BPF_MAP_TYPE_PERCPU_ARRAY, U.BPF_MAP_TYPE_PROG_ARRAY,
                        U.BPF_MAP_TYPE_PERF_EVENT_ARRAY, U.BPF_MAP_TYPE_CGROUP_ARRAY, U.BPF_MAP_TYPE_ARRAY_OF_MAPS))
CAPS = {"priv": {"bpf", "perfmon", "net_admin", "sys_admin"}, "unpriv": set()}


class Context(LoadContext):
    """The task the load runs on: its capabilities, its memory (this process's), its fds."""

    unprivileged_bpf_disabled = 0

    def __init__(self, caps, maps, btfs=None):
        self.caps = caps
        self.maps = maps
        self.btfs = btfs or {}

    def capable(self, name):
        return name in self.caps

    def map_of_fd(self, fd):
        if fd in self.maps:
            return self.maps[fd]
        return 22 if 0 <= fd < 3 else 9   # stdin/out/err exist but are no maps; others are closed

    def read(self, addr, n):
        return ctypes.string_at(addr, n)

    def read_str(self, addr, maxlen):
        return ctypes.string_at(addr).split(b"\0")[0][:maxlen]

    def write(self, addr, data):
        ctypes.memmove(addr, bytes(data), len(data))

    def obj_name_cpy(self, raw):
        return raw.split(b"\0")[0] if b"\0" in raw else raw

    def token_of_fd(self, fd):
        raise OSError(9, "no token")

    def btf_of_fd(self, fd):
        b = self.btfs.get(fd)
        if b is None:
            raise OSError(22 if 0 <= fd < 3 or fd in self.maps else 9, "no BTF")
        return b

    @property
    def kernel_btf(self):
        return btf_shim.vmlinux()


LOGBUF = ctypes.create_string_buffer(LOG_SIZE)


def run(case, mode):
    slots = [tuple(i) for i in case.insns]
    maps = {}
    fd = 3
    for kind, where in case.fixups.items():
        make = MAPS.get(kind)
        m = make() if make is not None else None
        if m is not None and mode == "unpriv" and (m.btf or m.map_type not in UNPRIV_MAPS):
            m = None
        if m is not None:
            m.bypass_spec_v1 = mode == "priv" and m.map_type in ARRAY_MAPS   # array_map_alloc sets it
        if m is None:
            mfd = -1
        else:
            mfd = fd
            maps[fd] = m
            fd += 1
        for idx in where:
            if idx < len(slots):
                c, d, s, o, _ = slots[idx]
                slots[idx] = (c, d, s, o, mfd)
    for name, idx in case.kfunc_fixups:
        if idx < len(slots):
            c, d, s, o, _ = slots[idx]
            slots[idx] = (c, d, s, o, kbtf.find_id(name, "func"))
    raw = b"".join(struct.pack("<BBhi", c, d | (s << 4), o, i) for c, d, s, o, i in slots)
    ib = ctypes.create_string_buffer(raw, max(len(raw), 1))
    lic = ctypes.create_string_buffer(b"GPL")
    level = 2 if case.result == "VERBOSE_ACCEPT" else 4
    a = U.make_attr(prog_type=case.prog_type, insn_cnt=len(slots), log_level=level, log_size=LOG_SIZE,
                    prog_flags=case.prog_flags, expected_attach_type=case.expected_attach_type)
    a.prog_load.insns = ctypes.addressof(ib)
    a.prog_load.license = ctypes.addressof(lic)
    a.prog_load.log_buf = ctypes.addressof(LOGBUF)
    if case.attach_kfunc and case.prog_type in (U.BPF_PROG_TYPE_TRACING, U.BPF_PROG_TYPE_LSM):
        prefix, kind = _attach_prefix(case.expected_attach_type)
        a.prog_load.attach_btf_id = kbtf.find_id(prefix + case.attach_kfunc, kind) or 0
    btfs = {}
    fi = None
    if case.func_info:
        if case.btf_types and mode == "priv":   # BPF_BTF_LOAD needs CAP_BPF
            btfs[100] = btf_shim.load(btfenc.raw_btf(case.btf_types, case.btf_strings or b"\0"))
            a.prog_load.prog_btf_fd = 100
        recs = b"".join(struct.pack("<II", off, tid) for off, tid in case.func_info)
        fi = ctypes.create_string_buffer(recs, len(recs))
        a.prog_load.func_info = ctypes.addressof(fi)
        a.prog_load.func_info_cnt = len(case.func_info)
        a.prog_load.func_info_rec_size = 8
    LOGBUF[0] = b"\0"
    try:
        bpf_prog_load(a, Context(CAPS[mode], maps, btfs))
        return "accept", 0, LOGBUF.value.decode("latin1")
    except OSError as e:
        return "reject", e.errno, LOGBUF.value.decode("latin1")


# test_loader's unprivileged rules (conformance.corpus.runner._unpriv_capable)
BPF_F_ZERO_SEED = 1 << 6
POISON_LDIMM64_MAP_BASE = 2001000000
SPECIAL_STRUCTS = {"bpf_spin_lock": ("spin_lock", 4), "bpf_res_spin_lock": ("res_spin_lock", 4),
                   "bpf_timer": ("timer", 16), "bpf_wq": ("wq", 16), "bpf_task_work": ("task_work", 8),
                   "bpf_list_head": ("list_head", 16), "bpf_list_node": ("list_node", 24),
                   "bpf_rb_root": ("rb_root", 16), "bpf_rb_node": ("rb_node", 32),
                   "bpf_refcount": ("refcount", 4)}
KPTR_TAGS = {"kptr_untrusted": "kptr", "kptr": "kptr_ref", "percpu_kptr": "kptr_percpu", "uptr": "uptr"}


def btf_record(b, tid, base=0, out=None, depth=0):
    """The special fields of BTF type ``tid`` (btf_parse_fields, simplified): [(kind, off, size, target)]."""
    out = [] if out is None else out
    t, tid = b.skip_modifiers(tid)
    if t is None or depth > 8:
        return out
    if t.kind in (4, 5):
        name = b.name(t)
        if name in SPECIAL_STRUCTS and depth:
            kind, size = SPECIAL_STRUCTS[name]
            out.append((kind, base, size, 0))
            return out
        for m in t.members:
            btf_record(b, m[1], base + b.member_bit_offset(t, m) // 8, out, depth + 1)
    elif t.kind == 3:
        et, _ix, n = t.array
        r = b.resolve_size(et)
        esz = r[1] if r else 0
        for i in range(min(n, 64)):
            before = len(out)
            btf_record(b, et, base + i * esz, out, depth + 1)
            if len(out) == before:
                break
    elif t.kind == 2:
        tt = b.type_by_id(t.type)
        if tt is not None and tt.kind == 18 and b.name(tt) in KPTR_TAGS:
            target_t, _ = b.skip_modifiers(tt.type)
            kb = btf_shim.vmlinux()
            kid = kb.find_by_name_kind(b.name(target_t), target_t.kind) if target_t is not None else -1
            out.append((KPTR_TAGS[b.name(tt)], base, 8, max(kid, 0)))
    return out


def map_of_spec(spec, b, priv):
    with_btf = priv and b is not None and (spec.btf_key_id or spec.btf_value_id)
    rec = btf_record(b, spec.btf_value_id) if with_btf and spec.btf_value_id else []
    inner = map_of_spec(spec.inner, None, priv) if spec.inner is not None else None
    m = StandInMap(spec.map_type, spec.key_size, spec.value_size, spec.max_entries, spec.map_flags, record=rec,
                   inner=inner, btf=bool(with_btf), name=spec.name[:15].encode())
    m.bypass_spec_v1 = priv and m.map_type in ARRAY_MAPS
    return m


def unpriv_capable(spec):
    if spec.map_type in (U.BPF_MAP_TYPE_HASH, U.BPF_MAP_TYPE_PERCPU_HASH, U.BPF_MAP_TYPE_HASH_OF_MAPS):
        return not spec.map_flags & BPF_F_ZERO_SEED
    return spec.map_type in UNPRIV_MAPS


def run_progs(case, mode):
    """A progs/verifier_*.c case, loaded as test_loader (through libbpf) does."""
    priv = mode == "priv"
    slots = [tuple(i) for i in case.insns]
    maps, btfs = {}, {}
    prog_btf = None
    if case.btf_types and priv:   # BPF_BTF_LOAD needs CAP_BPF
        prog_btf = btf_shim.load(btfenc.raw_btf(case.btf_types, case.btf_strings or b"\0"))
        btfs[100] = prog_btf
    fds = {}
    fd = 3
    for idx, (name, spec) in enumerate(case.maps.items()):
        if not priv and not unpriv_capable(spec):
            fds[name] = ("poison", idx)
            continue
        maps[fd] = map_of_spec(spec, prog_btf, priv)
        fds[name] = fd
        fd += 1
    for idx, name in case.map_slots:
        f = fds[name]
        if isinstance(f, tuple):
            call = (0x85, 0, 0, 0, POISON_LDIMM64_MAP_BASE + f[1])
            slots[idx] = slots[idx + 1] = call
        else:
            c, d, s_, o, _ = slots[idx]
            slots[idx] = (c, d, s_, o, f)
    for name, idx in case.kfunc_fixups:
        bid = kbtf.find_id(name, "func")
        if not bid:
            return "reject", 3, ""
        c, d, s_, o, _ = slots[idx]
        slots[idx] = (c, d, s_, o, bid)
    attach_btf_id = 0
    if case.attach_btf:
        attach_btf_id = kbtf.find_id(*case.attach_btf)
        if not attach_btf_id:
            return "reject", 3, ""
    raw = b"".join(struct.pack("<BBhi", c, d | (s << 4), o, i) for c, d, s, o, i in slots)
    ib = ctypes.create_string_buffer(raw, max(len(raw), 1))
    lic = ctypes.create_string_buffer(b"GPL")
    a = U.make_attr(prog_type=case.prog_type, insn_cnt=len(slots), prog_flags=case.prog_flags,
                    expected_attach_type=case.expected_attach_type)
    a.prog_load.insns = ctypes.addressof(ib)
    a.prog_load.license = ctypes.addressof(lic)
    a.prog_load.attach_btf_id = attach_btf_id
    if case.prog_name:
        nm = case.prog_name.encode()[:15]
        ctypes.memmove(a.prog_load.prog_name, nm, len(nm))
    fi = None
    if case.func_info and prog_btf is not None:
        recs = b"".join(struct.pack("<II", off, tid) for off, tid in case.func_info)
        fi = ctypes.create_string_buffer(recs, len(recs))
        a.prog_load.func_info = ctypes.addressof(fi)
        a.prog_load.func_info_cnt = len(case.func_info)
        a.prog_load.func_info_rec_size = 8
        a.prog_load.prog_btf_fd = 100
    level = case.log_level or 0
    ctx = Context(CAPS[mode], maps, btfs)
    while True:
        a.prog_load.log_level = level
        a.prog_load.log_size = LOG_SIZE if level else 0
        a.prog_load.log_buf = ctypes.addressof(LOGBUF) if level else 0
        LOGBUF[0] = b"\0"
        try:
            bpf_prog_load(a, ctx)
            return "accept", 0, LOGBUF.value.decode("latin1") if level else ""
        except OSError as e:
            if level == 0 and not case.log_level:
                level = 1
                continue
            return "reject", e.errno, LOGBUF.value.decode("latin1")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tree", default=os.environ.get("BPFEMU_KERNEL_SRC", "/work/ref/linux-6.1"))
    ap.add_argument("-k", default=None)
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--mode", default="both")
    ap.add_argument("--show", default=None, help="FILE/INDEX: print the emulator's log of one case")
    ap.add_argument("--corpus", default="both", help="6.1 (verifier/*.c), progs (progs/verifier_*.c) or both")
    args = ap.parse_args()
    corpus = []
    rec = {}
    if args.corpus in ("6.1", "both"):
        corpus += [(c, run) for c in load_corpus(args.tree)]
        rec.update(record.load(RECORD_PATH)["cases"])
    if args.corpus in ("progs", "both"):
        corpus += [(c, run_progs) for c in load_progs_corpus()]
        rec.update(record.load(PROGS_RECORD_PATH)["cases"])
    if args.show:
        case, runner = {c.id: (c, r) for c, r in corpus}[args.show]
        for mode in (["priv", "unpriv"] if args.mode == "both" else [args.mode]):
            verdict, err, log = runner(case, mode)
            print("== %s %s: %s errno %d\n%s" % (case.id, mode, verdict, err, log))
            print("== host:", rec[case.id].get(mode))
        return
    modes = ["priv", "unpriv"] if args.mode == "both" else [args.mode]
    per_file = collections.defaultdict(lambda: [0, 0])
    bad = []
    slow = []
    t0 = time.time()
    for case, runner in corpus:
        if args.k and args.k not in case.id and args.k not in case.name:
            continue
        r = rec.get(case.id)
        if r is None:
            continue
        for mode in modes:
            want = r.get(mode)
            if want is None:
                continue
            t1 = time.time()
            verdict, err, log = runner(case, mode)
            slow.append((time.time() - t1, case.id, mode))
            c = cause(log) if verdict == "reject" else None
            diffs = []
            if verdict != want["verdict"]:
                diffs.append("verdict %s, host %s" % (verdict, want["verdict"]))
            if err != want["errno"]:
                diffs.append("errno %d, host %d" % (err, want["errno"]))
            if verdict == want["verdict"] == "reject":
                if record.normalize_cause(c) != record.normalize_cause(want.get("cause")):
                    diffs.append("cause %r, host %r" % (c, want.get("cause")))
            stem = case.file[:-2]
            per_file[stem][1] += 1
            if not diffs:
                per_file[stem][0] += 1
            else:
                bad.append((case.id, mode, case.name, diffs))
    dt = time.time() - t0
    agree = sum(a for a, _ in per_file.values())
    total = sum(t for _, t in per_file.values())
    if args.markdown:
        print("| file | agree | total |\n|---|---|---|")
        for f in sorted(per_file):
            a, t = per_file[f]
            print("| %s | %d | %d |" % (f, a, t))
    if args.list:
        for cid, mode, name, diffs in bad:
            print("%-28s %-6s %-50s %s" % (cid, mode, name[:50], "; ".join(diffs)))
    slow.sort(reverse=True)
    print("slowest:", ", ".join("%s %s %.1fs" % (c, m, t) for t, c, m in slow[:6]))
    print("agree %d/%d (%.1f%%), %.1f s" % (agree, total, 100.0 * agree / max(total, 1), dt))


if __name__ == "__main__":
    main()
