"""``python -m conformance.corpus.verifier``: count, record, compare and show the verifier corpus.

    --count                         what the tree holds and what parsed (per file with -v)
    --record [--lower-unpriv-sysctl] [--out PATH]
                                    run every case on the host (privileged, and unprivileged where the
                                    selftest does) and write the recording; the unprivileged runs need
                                    kernel.unprivileged_bpf_disabled=0, which --lower-unpriv-sysctl sets for
                                    the duration of those runs only (it is a machine-wide setting)
    --table [--backend emu|host] [--markdown] [--list]
                                    run on a backend and print the per-file agreement with the recording
    --show ID                       one case (``file/index``): its program, the selftest's expectations, the
                                    recorded host outcome and a fresh run on the host
    --corpus progs                  the 6.12 progs/verifier_*.c corpus (conformance.corpus.progs) instead of
                                    6.1's verifier/*.c; its recording is verifier-progs-host-6.18.json
    -k TEXT                         only cases whose id or name contains TEXT (with any command)
    --files a,b                     only these files (stems)
"""
import argparse
import collections
import platform
import sys
import time

import bpfemu

from . import record as R
from .runner import (host_unprivileged_bpf_disabled, lowered_unprivileged_sysctl,
                     run_case)
from .verifier import RECORD_PATH, VERIFIER_DIR, load_corpus, tree_version


def corpus_of(name, tree=None, files=None):
    """(corpus, recording path, source dir) of '6.1' (verifier/*.c) or 'progs' (6.12 progs/verifier_*.c)."""
    if name == "progs":
        from .progs import PROGS_DIR, RECORD_PATH as PROGS_RECORD_PATH, load_progs_corpus
        return load_progs_corpus(tree, files), PROGS_RECORD_PATH, PROGS_DIR
    return load_corpus(tree, files=files), RECORD_PATH, VERIFIER_DIR


def _select(corpus, args):
    cases = list(corpus)
    if args.k:
        cases = [c for c in cases if args.k in c.id or args.k in c.name]
    return cases


def _count(corpus, args):
    declared = sum(v or 0 for v in corpus.declared.values())
    print("tree: %s" % corpus.tree)
    print("files: %d, tests declared: %d, parsed: %d, not parsed: %d"
          % (len(corpus.declared), declared, len(corpus), len(corpus.failures)))
    gen = [c for c in corpus if c.fill_helper]
    print("generated programs (fill_helper, our own generators): %d" % len(gen))
    print("run unprivileged too (socket filter / cgroup skb): %d" % sum(c.unpriv for c in corpus))
    for f, i, why in corpus.failures:
        print("  not parsed: %s #%s: %s" % (f, i, why))
    if args.verbose:
        per = collections.Counter(c.file for c in corpus)
        for f in sorted(corpus.declared):
            print("  %-36s %4d / %s" % (f, per[f], corpus.declared[f]))
    return 0


def _record(corpus, args):
    cases = _select(corpus, args)
    host = bpfemu.Host()
    out = {}
    t0 = time.time()
    for i, c in enumerate(cases):
        out[c.id] = {"insns": c.insns_digest()}
        if c.priv:
            o = run_case(c, host)
            out[c.id]["priv"] = R.to_record(o, R.selftest_verdict(c, o, False), R.pointer_runs(c, False))
        if args.verbose and (i % 100 == 0):
            print("  %d/%d %.1fs" % (i, len(cases), time.time() - t0), file=sys.stderr)
    t_priv = time.time() - t0
    unpriv_cases = [c for c in cases if c.unpriv]
    unpriv_note = None
    t1 = time.time()
    if unpriv_cases:
        state = host_unprivileged_bpf_disabled()
        if state != 0 and not args.lower_unpriv_sysctl:
            unpriv_note = ("not run: kernel.unprivileged_bpf_disabled=%s (use --lower-unpriv-sysctl)" % state)
        else:
            ctx = lowered_unprivileged_sysctl() if state else _Nothing()
            with ctx:
                for c in unpriv_cases:
                    o = run_case(c, host, unprivileged=True)
                    out[c.id]["unpriv"] = R.to_record(o, R.selftest_verdict(c, o, True), R.pointer_runs(c, True))
    t_unpriv = time.time() - t1
    progs = args.corpus == "progs"
    data = {
        "about": "BPF_PROG_LOAD (and BPF_PROG_TEST_RUN) outcomes of the Linux %s verifier selftests on this "
                 "host, recorded by python -m conformance.corpus.verifier --record%s; cause = the verifier's "
                 "error message (see conformance.corpus.runner.cause)" % ("6.12 progs/verifier_*.c" if progs else "6.1",
                                               " --corpus progs" if progs else ""),
        "kernel": platform.release(), "machine": platform.machine(),
        "corpus": {"tree": "linux-%s" % tree_version(corpus.tree), "dir": args.source_dir, "cases": len(corpus),
                   "recorded": len(cases)},
        "modes": {"priv": "uid 0, all capabilities", "unpriv": unpriv_note or
                  "uid 0 with no capabilities (a thread after capset), kernel.unprivileged_bpf_disabled=0",
                  "log_level": ("libbpf's: none, then 1 when the load fails (or the program's __log_level)"
                                if progs else "4 (2 for VERBOSE_ACCEPT cases), 16 MiB log, as test_verifier")},
        "cases": out,
    }
    path = args.out or args.record_path
    if args.k or args.files:
        try:  # a partial recording updates the full one
            old = R.load(path)
            old["cases"].update(out)
            data["cases"] = old["cases"]
            data["corpus"]["recorded"] = len(old["cases"])
        except (OSError, ValueError):
            pass
    R.save(path, data)
    print("recorded %d cases (%d unprivileged) in %.1fs + %.1fs -> %s"
          % (len(cases), sum("unpriv" in v for v in out.values()), t_priv, t_unpriv, path))
    _distribution(cases, out)
    return 0


class _Nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _distribution(cases, out):
    for mode in ("priv", "unpriv"):
        recs = [(c, out[c.id][mode]) for c in cases if mode in out.get(c.id, {})]
        if not recs:
            continue
        verdicts = collections.Counter(r["verdict"] for _c, r in recs)
        selftest = collections.Counter(r.get("selftest") for _c, r in recs)
        errnos = collections.Counter(r["errno"] for _c, r in recs if r["verdict"] == "reject")
        setup = collections.Counter(n.split(":")[0] for _c, r in recs for n in r.get("setup", ()))
        print("%s: %d cases: %s" % (mode, len(recs), dict(verdicts)))
        print("  against the selftest's own expectations: %s" % dict(selftest))
        print("  rejections by errno: %s" % dict(errnos))
        if setup:
            print("  fixtures that could not be made: %s" % dict(setup))


def _make_backend(name):
    """(privileged task, whether unprivileged runs are possible) on the backend."""
    if name == "host":
        return bpfemu.Host(), host_unprivileged_bpf_disabled() == 0
    return bpfemu.Kernel(unprivileged_bpf_disabled=0).spawn(), True


def table_rows(cases, rec, backend="emu", runs=True):
    """Per-file agreement of a backend with the recording: {file: Counter(total, agree, unpriv_total,
    unpriv_agree, run_total, run_agree)} and the list of disagreements [(case id, mode, [diffs])]."""
    sys_, can_unpriv = _make_backend(backend)
    rows = collections.OrderedDict()
    bad = []
    for c in cases:
        r = rec["cases"].get(c.id)
        row = rows.setdefault(c.file, collections.Counter())
        if r is None or r.get("insns") != c.insns_digest():
            row["unrecorded"] += 1
            continue
        for mode in ("priv", "unpriv"):
            if mode not in r or (mode == "unpriv" and not can_unpriv):
                continue
            o = run_case(c, sys_, unprivileged=mode == "unpriv")
            d = R.compare(o, r[mode], runs=False)
            pre = "" if mode == "priv" else "u_"
            row[pre + "total"] += 1
            row[pre + "agree"] += not d
            if runs and r[mode]["verdict"] == "accept" and r[mode].get("retval") is not None:
                row["run_total"] += 1
                row["run_agree"] += not R.compare(o, r[mode], runs=True)
            if d:
                bad.append((c.id, mode, d))
    return rows, bad


def _table(corpus, args):
    rec = R.load(args.recording or args.record_path)
    cases = _select(corpus, args)
    rows, bad = table_rows(cases, rec, args.backend)
    tot = collections.Counter()
    lines = []
    for f, row in rows.items():
        tot.update(row)
        lines.append((f, row))

    def pct(a, b):
        return "%d/%d" % (a, b) if b else "-"
    if args.markdown:
        print("| file | privileged | unprivileged | test runs |")
        print("|---|---:|---:|---:|")
        for f, row in lines + [("**all**", tot)]:
            print("| %s | %s | %s | %s |" % (f, pct(row["agree"], row["total"]), pct(row["u_agree"], row["u_total"]),
                                            pct(row["run_agree"], row["run_total"])))
    else:
        print("%-36s %12s %12s %12s" % ("file", "privileged", "unpriv", "test runs"))
        for f, row in lines + [("all", tot)]:
            print("%-36s %12s %12s %12s" % (f, pct(row["agree"], row["total"]), pct(row["u_agree"], row["u_total"]),
                                             pct(row["run_agree"], row["run_total"])))
    if args.list:
        for cid, mode, d in bad:
            print("%s [%s]: %s" % (cid, mode, "; ".join(d)))
    if tot["unrecorded"]:
        print("(%d cases not in the recording or changed since)" % tot["unrecorded"])
    return 0


def _show(corpus, args):
    c = corpus.by_id().get(args.show)
    if c is None:
        print("no case %s" % args.show)
        return 1
    print("%s: %s" % (c.id, c.name))
    print("prog_type %d attach %d prog_flags %#x fixups %s kfuncs %s unpriv %s" %
          (c.prog_type, c.expected_attach_type, c.prog_flags, c.fixups, c.kfunc_fixups, c.unpriv))
    print("selftest: result %s errstr %r / unpriv %s %r; runs %d retvals %s" %
          (c.result, c.errstr, c.result_unpriv, c.errstr_unpriv, c.n_runs,
           [r.retval for r in c.retvals[:c.n_runs]]))
    if len(c.insns) <= 200:
        for i, x in enumerate(c.insns):
            print("  %4d: %02x %x %x %6d %d" % (i, x.code, x.dst_reg, x.src_reg, x.off, x.imm))
    else:
        print("  (%d slots)" % len(c.insns))
    try:
        rec = R.load(args.record_path)["cases"].get(c.id)
    except OSError:
        rec = None
    print("recorded: %s" % rec)
    o = run_case(c, bpfemu.Host(), log_level=args.log_level)
    print("host now: %s errno %d cause %r retval %s run_errno %s setup %s" %
          (o.verdict, o.errno, o.cause, o.retval, o.run_errno, o.setup))
    print(o.log[-4000:])
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m conformance.corpus.verifier",
                                 description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--count", action="store_true")
    g.add_argument("--record", dest="do_record", action="store_true")
    g.add_argument("--table", action="store_true")
    g.add_argument("--show", metavar="ID")
    ap.add_argument("--backend", choices=("emu", "host"), default="emu")
    ap.add_argument("--corpus", choices=("6.1", "progs"), default="6.1",
                    help="6.1: verifier/*.c of 6.1 (default); progs: progs/verifier_*.c of 6.12")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--list", action="store_true", help="with --table: every disagreement")
    ap.add_argument("--lower-unpriv-sysctl", action="store_true")
    ap.add_argument("--out")
    ap.add_argument("--recording", help="the recording to compare with (default: the package's)")
    ap.add_argument("--log-level", type=int, default=None)
    ap.add_argument("-k")
    ap.add_argument("--files")
    ap.add_argument("--tree")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    corpus, args.record_path, args.source_dir = corpus_of(args.corpus, args.tree,
                                                          args.files.split(",") if args.files else None)
    if args.do_record:
        return _record(corpus, args)
    if args.table:
        return _table(corpus, args)
    if args.show:
        return _show(corpus, args)
    return _count(corpus, args)


if __name__ == "__main__":
    raise SystemExit(main())
