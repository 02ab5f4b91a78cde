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

from bpfemu import uapi as U  # noqa: E402
from bpfemu.prog.load import LoadContext, bpf_prog_load  # noqa: E402
from conformance.corpus import kbtf, record  # noqa: E402
from conformance.corpus.runner import cause  # noqa: E402
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
    "map_spin_lock": lambda: StandInMap(A, 4, 8, 1, record=[("spin_lock", 4, 4)], btf=True, name=b"test_map"),
    "map_array_ro": lambda: StandInMap(A, 4, 48, 1, U.BPF_F_RDONLY_PROG),
    "map_array_wo": lambda: StandInMap(A, 4, 48, 1, U.BPF_F_WRONLY_PROG),
    "map_array_small": lambda: StandInMap(A, 4, 1, 1),
    "sk_storage_map": lambda: StandInMap(U.BPF_MAP_TYPE_SK_STORAGE, 4, 8, 0, NP, record=[("spin_lock", 4, 4)],
                                         btf=True, name=b"test_map"),
    "map_event_output": lambda: StandInMap(U.BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4, 4, 1),
    "map_reuseport_array": lambda: StandInMap(U.BPF_MAP_TYPE_REUSEPORT_SOCKARRAY, 4, 8, 1),
    "map_ringbuf": lambda: StandInMap(U.BPF_MAP_TYPE_RINGBUF, 0, 0, 4096),
    "map_timer": lambda: StandInMap(A, 4, 16, 1, record=[("timer", 0, 16)], btf=True, name=b"test_map"),
    "map_kptr": None,   # its BTF does not load on 6.18 (the recording notes the setup failure)
}
# what an unprivileged task cannot create: map types that need CAP_BPF/CAP_NET_ADMIN, and maps with BTF
# (BPF_BTF_LOAD needs CAP_BPF)
UNPRIV_MAPS = frozenset(U.MAP_TYPE_NAMES and (
    U.BPF_MAP_TYPE_ARRAY, U.BPF_MAP_TYPE_PERCPU_ARRAY, U.BPF_MAP_TYPE_PROG_ARRAY, U.BPF_MAP_TYPE_PERF_EVENT_ARRAY,
    U.BPF_MAP_TYPE_CGROUP_ARRAY, U.BPF_MAP_TYPE_ARRAY_OF_MAPS, U.BPF_MAP_TYPE_HASH, U.BPF_MAP_TYPE_PERCPU_HASH,
    U.BPF_MAP_TYPE_HASH_OF_MAPS, U.BPF_MAP_TYPE_RINGBUF, U.BPF_MAP_TYPE_USER_RINGBUF,
    U.BPF_MAP_TYPE_CGROUP_STORAGE, U.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE))
CAPS = {"priv": {"bpf", "perfmon", "net_admin", "sys_admin"}, "unpriv": set()}


class Context(LoadContext):
    """The task the load runs on: its capabilities, its memory (this process's), its fds."""

    unprivileged_bpf_disabled = 0

    def __init__(self, caps, maps):
        self.caps = caps
        self.maps = maps

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
        return raw.split(b"\0")[0]

    def token_of_fd(self, fd):
        raise OSError(9, "no token")


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
            m.bypass_spec_v1 = mode == "priv"   # set from the creator's capabilities at MAP_CREATE
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
        a.prog_load.attach_btf_id = 1
    if case.func_info:
        a.prog_load.func_info_cnt = len(case.func_info)
    LOGBUF[0] = b"\0"
    try:
        bpf_prog_load(a, Context(CAPS[mode], maps))
        return "accept", 0, LOGBUF.value.decode("latin1")
    except OSError as e:
        return "reject", e.errno, LOGBUF.value.decode("latin1")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tree", default=os.environ.get("BPFEMU_KERNEL_SRC", "/work/ref/linux-6.1"))
    ap.add_argument("-k", default=None)
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--mode", default="both")
    ap.add_argument("--show", default=None, help="FILE/INDEX: print the emulator's log of one case")
    args = ap.parse_args()
    corpus = load_corpus(args.tree)
    if args.show:
        case = corpus.by_id()[args.show]
        for mode in (["priv", "unpriv"] if args.mode == "both" else [args.mode]):
            verdict, err, log = run(case, mode)
            print("== %s %s: %s errno %d\n%s" % (case.id, mode, verdict, err, log))
            want = record.load(RECORD_PATH)["cases"][case.id].get(mode)
            print("== host:", want)
        return
    rec = record.load(RECORD_PATH)["cases"]
    modes = ["priv", "unpriv"] if args.mode == "both" else [args.mode]
    per_file = collections.defaultdict(lambda: [0, 0])
    bad = []
    slow = []
    t0 = time.time()
    for case in corpus:
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
            verdict, err, log = run(case, mode)
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
