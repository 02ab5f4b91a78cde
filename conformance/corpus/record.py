"""Recorded host outcomes of the verifier corpus, and how outcomes are compared.

The recording (``verifier-host-6.18.json``, next to this file) is our own data: for each case id, the
digest of the program that was loaded and, for the privileged run and (where test_verifier runs it) the
unprivileged run, the host's verdict, errno, cause line (:func:`runner.cause`), test-run results (a run the
selftest says returns a pointer is recorded as "any") and setup notes, plus ``selftest``: whether the host did what the 6.1 selftest expects ('ok', 'skip' or the first
point where it did not: 'verdict', 'errstr', 'retval', 'run_errno', 'insn_processed').

Shapes::

    {"kernel": "6.18.x", "machine": "x86_64", "corpus": {...}, "modes": {...},
     "cases": {"and/0": {"insns": "0123456789ab",
                         "priv": {"verdict": "reject", "errno": 13, "cause": "R0 max value is ...",
                                  "retval": null, "run_errno": null, "selftest": "ok"},
                         "unpriv": {...}}}}
"""
import json
import os
import re

__all__ = ["load", "save", "to_record", "pointer_runs", "compare", "selftest_verdict", "normalize_cause"]

POINTER_VALUE = 0xcafe4a  # test_verifier's "0xcafe4all": a retval meaning "any value" (a pointer was returned)
ENOTSUPP = 524
EPERM = 1


def load(path):
    """The recording at ``path`` (a dict as in the module docstring); FileNotFoundError if absent."""
    with open(path) as f:
        return json.load(f)


def save(path, data):
    """Write a recording: one case per line, so that a re-recording diffs line by line."""
    cases = data.get("cases", {})
    head = {k: v for k, v in data.items() if k != "cases"}
    with open(path + ".tmp", "w") as f:
        f.write("{\n")
        for k, v in head.items():
            f.write("%s: %s,\n" % (json.dumps(k), json.dumps(v, sort_keys=True)))
        f.write('"cases": {\n')
        items = sorted(cases.items(), key=lambda kv: _natural(kv[0]))
        for i, (k, v) in enumerate(items):
            f.write("%s: %s%s\n" % (json.dumps(k), json.dumps(v, sort_keys=True), "," if i + 1 < len(items) else ""))
        f.write("}\n}\n")
    os.replace(path + ".tmp", path)


def _natural(key):
    stem, _, idx = key.rpartition("/")
    return (stem, int(idx) if idx.isdigit() else 0)


def pointer_runs(case, unprivileged):
    """Indexes of the runs whose return value the selftest declares to be a pointer (any value)."""
    return {i for i in range(case.n_runs) if case.expected_retval(i, unprivileged) == POINTER_VALUE}


def to_record(outcome, selftest=None, any_retval=()):
    """The JSON-able record of an :class:`Outcome` (the log itself is not kept, only its cause). Runs in
    ``any_retval`` return a pointer: their retval is recorded as "any"."""
    retval = None
    if outcome.retval is not None:
        retval = ["any" if i in any_retval and err == 0 else v
                  for i, (v, err) in enumerate(zip(outcome.retval, outcome.run_errno))]
    r = {"verdict": outcome.verdict, "errno": outcome.errno, "cause": outcome.cause, "retval": retval,
         "run_errno": list(outcome.run_errno) if outcome.run_errno is not None else None}
    if outcome.setup:
        r["setup"] = list(outcome.setup)
    if selftest is not None:
        r["selftest"] = selftest
    return r


_FD = re.compile(r"\bfd (-?\d+)\b")


def normalize_cause(text):
    """A cause with what depends on the process rather than on the program taken out: fd numbers (the
    host's test process and an emulated task number their fds differently)."""
    if text is None:
        return None
    return _FD.sub(lambda m: "fd N" if m.group(1) != "-1" else m.group(0), text)


def compare(outcome, rec, runs=True):
    """Where ``outcome`` (an :class:`Outcome`) departs from a recorded outcome: a list of short strings,
    empty when they agree. Load: verdict, errno and (for rejections) the normalized cause; with ``runs``,
    the test-run retvals and errnos too."""
    diffs = []
    if outcome.verdict != rec["verdict"]:
        diffs.append("verdict %s, host %s" % (outcome.verdict, rec["verdict"]))
    if outcome.errno != rec["errno"]:
        diffs.append("errno %d, host %d" % (outcome.errno, rec["errno"]))
    if rec["verdict"] == "reject" and outcome.verdict == "reject":
        mine, theirs = normalize_cause(outcome.cause), normalize_cause(rec.get("cause"))
        if mine != theirs:
            diffs.append("cause %r, host %r" % (mine, theirs))
    if runs and outcome.verdict == rec["verdict"] == "accept":
        got = list(outcome.retval) if outcome.retval is not None else None
        want = rec.get("retval")
        if got is not None and want is not None and len(got) == len(want):
            got = ["any" if w == "any" and g is not None else g for g, w in zip(got, want)]
        if got != want:
            diffs.append("retval %s, host %s" % (got, rec.get("retval")))
        gote = list(outcome.run_errno) if outcome.run_errno is not None else None
        if gote != rec.get("run_errno"):
            diffs.append("run errno %s, host %s" % (gote, rec.get("run_errno")))
    return diffs


def _find_in_order(log, errstr, regex=False):
    """test_verifier's check: every tab-separated fragment of errstr appears in log, in order; with
    ``regex``, fragments are test_loader's patterns (literal text with ``{{regex}}`` parts)."""
    pos = 0
    for frag in errstr.split("\t"):
        if not frag:
            continue
        if regex:
            m = re.compile(_msg_regex(frag)).search(log, pos)
            if not m:
                return False
            pos = m.end()
            continue
        at = log.find(frag, pos)
        if at < 0:
            return False
        pos = at + len(frag)
    return True


def _msg_regex(msg):
    out, i = [], 0
    while i < len(msg):
        j = msg.find("{{", i)
        if j < 0:
            out.append(re.escape(msg[i:]))
            break
        out.append(re.escape(msg[i:j]))
        k = msg.index("}}", j)
        out.append(msg[j + 2:k])
        i = k + 2
    return "".join(out)


def selftest_verdict(case, outcome, unprivileged):
    """How test_verifier (6.1) would judge ``outcome``: 'ok', 'skip' (ENOTSUPP: a feature the kernel lacks),
    or the first check that fails: 'verdict', 'errstr', 'insn_processed', 'retval', 'run_errno'."""
    result, errstr = case.expected(unprivileged)
    if outcome.verdict == "reject" and outcome.errno == ENOTSUPP:
        return "skip"
    if result in ("ACCEPT", "VERBOSE_ACCEPT"):
        if outcome.verdict != "accept":
            return "verdict"
        if (result == "VERBOSE_ACCEPT" or case.msg_regex) and errstr and \
                not _find_in_order(outcome.log, errstr, case.msg_regex):
            return "errstr"
    else:
        if outcome.verdict != "reject":
            return "verdict"
        if case.msg_regex:  # test_loader: the messages, if any, must match
            if errstr and not _find_in_order(outcome.log, errstr, True):
                return "errstr"
        elif not errstr or not _find_in_order(outcome.log, errstr):
            return "errstr"
    if not unprivileged and case.insn_processed:
        m = re.search(r"processed (\d+) ", outcome.log)
        if not m or int(m.group(1)) != case.insn_processed:
            return "insn_processed"
    if outcome.verdict == "accept" and outcome.retval is not None:
        for i, (got, err) in enumerate(zip(outcome.retval, outcome.run_errno)):
            if err:
                if err == ENOTSUPP or (err == EPERM and unprivileged):
                    continue
                return "run_errno"
            want = case.expected_retval(i, unprivileged) if i < len(case.retvals) else 0
            if want != POINTER_VALUE and got != want:
                return "retval"
    return "ok"

