"""How far OBJ_GET_INFO_BY_FD of the verifier corpus programs agrees between the emulator and the host:
``verified_insns`` and the xlated program (``xlated_prog_len``; the instructions with the machine's own
values masked: helper call immediates, which are kernel addresses, and map ids).

    python tools/prog_info_agreement.py [STRIDE] [--without-rnd-hi32]   # every STRIDE-th privileged case (default 1)

Loads each privileged case of both corpora (``conformance.corpus``, a kernel tree is needed) on the host and
on the emulator as the corpus runner does, reads the info of each program that loads, and prints the
agreement and the first disagreements. Used for the figures in docs/verifier.md.

The selftest runners load every case with BPF_F_TEST_RND_HI32, which makes the kernel write random upper
halves after 32-bit definitions (``opt_subreg_zext_lo32_rnd_hi32``), a rewrite the emulator does not make.
``--without-rnd-hi32`` loads the cases without that flag, as a loader such as libbpf would.
"""
import ctypes
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import bpfemu  # noqa: E402
from bpfemu import uapi as U  # noqa: E402
from conformance.corpus.progs import load_progs_corpus  # noqa: E402
from conformance.corpus.runner import run_case  # noqa: E402
from conformance.corpus.verifier import load_corpus  # noqa: E402

BIG = 100000


def prog_info(sys_, fd):
    """(verified_insns, [insn 5-tuples]) of a program fd."""
    def get(info):
        a = U.make_attr(**{"info.bpf_fd": fd, "info.info_len": ctypes.sizeof(info),
                           "info.info": ctypes.addressof(info)})
        sys_.bpf(U.BPF_OBJ_GET_INFO_BY_FD, a)
    info = U.bpf_prog_info()
    get(info)
    n = info.xlated_prog_len
    buf = ctypes.create_string_buffer(max(n, 1))
    info2 = U.bpf_prog_info()
    info2.xlated_prog_len, info2.xlated_prog_insns = n, ctypes.addressof(buf)
    get(info2)
    raw = buf.raw[:n]
    insns = [(raw[i], raw[i + 1] & 15, raw[i + 1] >> 4, int.from_bytes(raw[i + 2:i + 4], "little", signed=True),
              int.from_bytes(raw[i + 4:i + 8], "little", signed=True)) for i in range(0, n, 8)]
    return info.verified_insns, insns


class Recorder:
    """A backend task that notes the info of every program it loads (the runner closes its fds)."""

    def __init__(self, inner):
        self.inner = inner
        self.last = None

    def bpf(self, cmd, attr, *rest):
        r = self.inner.bpf(cmd, attr, *rest)
        if cmd == U.BPF_PROG_LOAD:
            self.last = prog_info(self.inner, r)
        return r

    def __getattr__(self, name):
        return getattr(self.inner, name)


def masked(insns):
    out = []
    prev_ld = False
    for c, d, s, o, imm in insns:
        if c == 0x85 and s == 0:          # helper call: imm is an address on the host
            imm = 0
        if c == 0x18 and s in (1, 2):     # map by id
            imm = 0
        out.append((c, d, s, o, imm))
        prev_ld = c == 0x18
    return out


BPF_F_TEST_RND_HI32 = 1 << 2


def main(stride=1, without_rnd_hi32=False):
    cases = [c for c in list(load_corpus()) + list(load_progs_corpus())
             if c.priv and c.index % stride == 0 and len(c.insns) <= BIG]
    if without_rnd_hi32:
        for c in cases:
            c.prog_flags &= ~BPF_F_TEST_RND_HI32
    host = Recorder(bpfemu.Host())
    emu = Recorder(bpfemu.Kernel(unprivileged_bpf_disabled=0).spawn())
    n = vi = xl_len = xl = 0
    bad_vi, bad_xl = [], []
    for c in cases:
        res = []
        for r in (host, emu):
            r.last = None
            o = run_case(c, r)
            res.append(r.last if o.verdict == "accept" else None)
        if res[0] is None or res[1] is None:
            continue
        n += 1
        (hv, hx), (ev, ex) = res
        vi += hv == ev
        if hv != ev:
            bad_vi.append((c.id, hv, ev))
        xl_len += len(hx) == len(ex)
        if masked(hx) == masked(ex):
            xl += 1
        else:
            bad_xl.append((c.id, len(hx), len(ex)))
    print("programs loaded on both: %d" % n)
    print("verified_insns equal: %d/%d" % (vi, n), bad_vi[:10])
    print("xlated_prog_len equal: %d/%d" % (xl_len, n))
    print("xlated insns equal (call imms and map ids masked): %d/%d" % (xl, n), bad_xl[:15])


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(int(args[0]) if args else 1, "--without-rnd-hi32" in sys.argv)
