"""python -m bench.verifier: how long BPF_PROG_LOAD takes on the kernel's verifier selftests.

    python -m bench.verifier                    # the 6.1 corpus (1365 programs), emulator and host
    python -m bench.verifier --corpus progs     # the 6.12 progs/verifier_*.c corpus
    python -m bench.verifier --smoke            # a few files (CI)
    python -m bench.verifier --json out.json

Each case is loaded once, privileged, as test_verifier / test_loader load it
(:func:`conformance.corpus.runner.run_case`: its maps created first, the log at test_verifier's level), on the
emulator and on the host; the time is the wall time of all loads of one backend, map creation included. The
figure the project tracks is the emulator's total and its ratio to the host's (issue 13: ~1400 loads in under
two minutes on the development machine). Needs a kernel tree with the selftests (BPFEMU_KERNEL_SRC).
"""
import argparse
import json
import time

from bpfemu.testing.backends import EmuBackend, host_status

SMOKE_FILES = ("and", "array_access", "bounds", "calls", "jmp32")


def load_all(cases, sys_):
    from conformance.corpus.runner import run_case
    t0 = time.perf_counter()
    verdicts = {}
    for c in cases:
        verdicts[c.id] = run_case(c, sys_).verdict
    return time.perf_counter() - t0, verdicts


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default="6.1", choices=("6.1", "progs"))
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    if args.corpus == "6.1":
        from conformance.corpus.verifier import load_corpus
        corpus = load_corpus()
    else:
        from conformance.corpus.progs import load_progs_corpus
        corpus = load_progs_corpus()
    cases = [c for c in corpus if c.priv and (not args.smoke or c.file[:-2] in SMOKE_FILES
                                              or c.file[:-2] in tuple("verifier_" + f for f in SMOKE_FILES))]
    out = {"corpus": args.corpus, "programs": len(cases)}
    emu = EmuBackend()
    task = emu.kernel.spawn()
    out["emu_s"], emu_v = load_all(cases, task)
    ok, why = host_status()
    if ok:
        import bpfemu
        out["host_s"], host_v = load_all(cases, bpfemu.Host())
        out["ratio"] = out["emu_s"] / out["host_s"] if out["host_s"] else None
        out["same_verdict"] = sum(1 for k in emu_v if emu_v[k] == host_v.get(k))
    else:
        out["host"] = "unavailable: %s" % why
    print("%(programs)d programs (%(corpus)s corpus): emulator %(emu_s).1f s" % out +
          (", host %.2f s, ratio %.0f, same verdict %d" % (out["host_s"], out["ratio"], out["same_verdict"])
           if "host_s" in out else ""))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
