#!/usr/bin/env python3
"""Regenerate the generated parts of docs/kernel-versions.md from the profiles and the recorded runs.

    python3 tools/gen_kernel_versions.py          # rewrite docs/kernel-versions.md in place
    python3 tools/gen_kernel_versions.py --check  # exit 1 when the file is not up to date

Two parts are generated, each between ``<!-- generated:NAME -->`` and ``<!-- end:NAME -->``:

- ``counts``: per version, the conformance suite's outcome on the emulator's profile
  (``--bpf-backend=emu --bpf-kernel=VERSION``) and on the real kernel in a VM
  (``tools/vm_conformance.py VERSION``), read from ``conformance/versions/VERSION.json``;
- ``facts``: every fact of :mod:`bpfemu.profiles` (:data:`~bpfemu.profiles.profile.FACTS`) with each
  version's value, from the profile tables themselves.

The rest of the page (the remaining known differences and their reasons) is written by hand.
"""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bpfemu import profiles, uapi as U  # noqa: E402
from bpfemu.profiles.profile import FACTS  # noqa: E402

DOC = os.path.join(ROOT, "docs", "kernel-versions.md")
RECORDS = os.path.join(ROOT, "conformance", "versions")


def _newest_first():
    return list(reversed(profiles.VERSIONS))


def _counts_cell(counts):
    if not counts:
        return "not recorded"
    out = "%d passed, %d failed, %d skipped" % (counts.get("passed", 0), counts.get("failed", 0) +
                                                counts.get("error", 0), counts.get("skipped", 0))
    return out + (", %d xfailed" % counts["xfailed"] if counts.get("xfailed") else "")


def render_counts():
    rows = ["| version | emulator profile (`--bpf-backend=emu --bpf-kernel=V`) | real kernel in a VM "
            "(`--bpf-backend=vm:V`) | kernel package |", "|---|---|---|---|"]
    for v in _newest_first():
        path = os.path.join(RECORDS, v + ".json")
        if not os.path.exists(path):
            rows.append("| %s | the plain suite (`--bpf-backend=both`) | the host's own kernel | - |" % v)
            continue
        with open(path) as f:
            rec = json.load(f)
        rows.append("| %s | %s | %s | `%s` |" % (v, _counts_cell(rec.get("emulator_counts")), _counts_cell(rec.get("counts")),
                                                 rec.get("package", "?")))
    causes = []
    for v in _newest_first():
        path = os.path.join(RECORDS, v + ".json")
        if os.path.exists(path):
            with open(path) as f:
                rec = json.load(f)
            causes.append("- %s in the VM, failures by cause: %s" % (v, ", ".join(
                "`%s` %d" % kv for kv in rec.get("causes", {}).items()) or "none"))
    return "\n".join(rows) + ("\n\n" + "\n".join(causes) if causes else "")


def _names(values, namer):
    return ", ".join(sorted(namer(x) for x in values))


def _value(name, p):
    """A fact's value in ``p``, in words; for sets and tables, what differs from the next newer profile."""
    value = getattr(p, name)
    newer = p.newer
    if name in ("commands", "map_types", "lookup_and_delete_types"):
        namer = {"commands": U.cmd_name, "map_types": U.map_type_name,
                 "lookup_and_delete_types": U.map_type_name}[name]
        if newer is None:
            return "%d: all of the uapi's" % len(value) if name != "lookup_and_delete_types" else _names(value, namer)
        gone = set(getattr(newer, name)) - set(value)
        return "without %s" % _names(gone, namer) if gone else "="
    if name == "map_value_fields":
        if newer is None:
            return ", ".join(value)
        gone = [f for f in newer.map_value_fields if f not in value]
        return "without %s" % ", ".join(gone) if gone else "="
    if name in ("last_fields", "sizeof", "kernel_offsets"):
        if newer is None:
            return {"last_fields": "the command table's", "sizeof": "%d structs" % len(value),
                    "kernel_offsets": "%d fields" % len(value)}[name]
        changed = {k: v for k, v in value.items() if getattr(newer, name).get(k) != v}
        gone = sorted(k for k in getattr(newer, name) if k not in value)
        if not changed and not gone:
            return "="
        namer = {"last_fields": U.cmd_name, "sizeof": str, "kernel_offsets": lambda k: "%s.%s" % k}[name]
        return "; ".join(["%s %s" % (namer(k), v) for k, v in sorted(changed.items(), key=lambda kv: str(kv[0]))]
                         + ["no %s" % namer(k) for k in gone])
    if name == "prog_flags":
        if newer is not None and newer.prog_flags == value:
            return "="
        return "%#x" % value
    if name in ("instructions", "test_run_types", "prog_types"):
        namer = str if name == "instructions" else (
            lambda t: U.PROG_TYPE_NAMES.get(t, str(t))[len("BPF_PROG_TYPE_"):].lower())
        if newer is None:
            return _names(value, namer) if name == "instructions" else "%d types" % len(value)
        if name == "prog_types" and set(value) == set(getattr(newer, name)):
            return "="
        gone, new = set(getattr(newer, name)) - set(value), set(value) - set(getattr(newer, name))
        words = (["without %s" % _names(gone, namer)] if gone else []) + (["with %s" % _names(new, namer)] if new
                                                                           else [])
        return "; ".join(words) or "="
    if name == "map_field_rules":
        if newer is not None and newer.map_field_rules == value:
            return "="
        if value == "record":
            return "record"
        return "; ".join("%s: EACCES with %s, %sin %s (else %d)%s%s" % (
            "/".join(r.fields),
            " or ".join(n for n, b in (("RDONLY_PROG", U.BPF_F_RDONLY_PROG), ("WRONLY_PROG", U.BPF_F_WRONLY_PROG))
                        if r.eacces_flags & b),
            "CAP_BPF, " if r.needs_bpf else "", _names(r.map_types, U.map_type_name), r.errno,
            "", ", no MAP_FREEZE" if r.blocks_freeze else "") for r in value)
    if name == "freeze_checks":
        value = ", ".join(value)
    if newer is not None and getattr(newer, name) == getattr(p, name):
        return "="
    return str(value)


def render_facts():
    vs = _newest_first()
    rows = ["| fact | kernel source | meaning | %s |" % " | ".join(vs), "|---|---|---|%s" % ("---|" * len(vs))]
    for name, (source, meaning) in FACTS.items():
        cells = [_value(name, profiles.PROFILES[v]).replace("|", "/") for v in vs]
        rows.append("| `%s` | %s | %s | %s |" % (name, source, meaning, " | ".join(cells)))
    notes = []
    for v in vs:
        for n in profiles.PROFILES[v].notes:
            notes.append("- %s: %s" % (v, n))
    out = "\n".join(rows) + "\n\n(\"=\": as the next newer version.)"
    if notes:
        out += "\n\nWhat the profiles say they do not model:\n\n" + "\n".join(notes)
    return out


PARTS = {"counts": render_counts, "facts": render_facts}


def regenerate(text):
    for name, fn in PARTS.items():
        start, end = "<!-- generated:%s -->" % name, "<!-- end:%s -->" % name
        i, j = text.find(start), text.find(end)
        if i < 0 or j < 0:
            raise SystemExit("%s: no %s ... %s markers" % (DOC, start, end))
        text = text[:i + len(start)] + "\n" + fn() + "\n" + text[j:]
    return text


def main(argv):
    with open(DOC) as f:
        old = f.read()
    new = regenerate(old)
    if "--check" in argv:
        if new != old:
            sys.stderr.write("docs/kernel-versions.md is out of date: run tools/gen_kernel_versions.py\n")
            return 1
        return 0
    with open(DOC, "w") as f:
        f.write(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
