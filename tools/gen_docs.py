#!/usr/bin/env python3
"""Generate docs/supported.md: the supported commands and map types.

The commands table comes from the command table (``bpfemu.syscall.table``: each
command's last attr field and user pointers, and whether a handler implements
it); the map-types table from the registry ``bpfemu.maps.bpf_types.MAP_TYPES``
against every ``enum bpf_map_type`` value. The "conformance tests" columns are
found by reading conformance/*.py (no test is run): a test covers a command
when its body or decorators name the command (``u.BPF_MAP_CREATE``), call a
helper that does (bpfemu.testing.support or the test module's own functions,
followed transitively), or use a bpfemu.Map method that issues it (each method
declares its commands with ``@issues``). Map types are found the same way
(``BPF_MAP_TYPE_HASH``, a helper like ``hash_map``, or the type's name as a
string given to ``Map.create``).

    python tools/gen_docs.py          # rewrite docs/supported.md
    python tools/gen_docs.py --check  # exit 1 if it is stale (CI)
"""
import argparse
import ast
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bpfemu import uapi  # noqa: E402
from bpfemu.api.map import Map  # noqa: E402
from bpfemu.maps.bpf_types import MAP_TYPES  # noqa: E402
from bpfemu.syscall.sys_bpf import implemented  # noqa: E402
from bpfemu.syscall.table import COMMANDS  # noqa: E402

OUT = os.path.join(ROOT, "docs", "supported.md")
CONFORMANCE = os.path.join(ROOT, "conformance")
SUPPORT = os.path.join(ROOT, "bpfemu", "testing", "support.py")

# bpfemu.Map methods -> the commands they issue (their @issues declarations)
API_COMMANDS = {name: getattr(Map, name).bpf_commands for name in dir(Map)
                if getattr(getattr(Map, name), "bpf_commands", None)}
SUBSCRIPT = {ast.Load: "__getitem__", ast.Store: "__setitem__", ast.Del: "__delitem__"}
CMD_NAMES = set(uapi.CMD_NAMES.values())
TYPE_NAMES = {n for n in uapi.MAP_TYPE_NAMES.values()}
SHORT_TYPE = {uapi.map_type_name(v): n for v, n in uapi.MAP_TYPE_NAMES.items()}


class Module:
    """One conformance file: its functions and what each names directly."""

    def __init__(self, path):
        self.name = os.path.basename(path)
        with open(path) as f:
            self.tree = ast.parse(f.read(), path)
        self.uses_api = any(isinstance(n, ast.ImportFrom) and any(a.name == "Map" for a in n.names)
                            for n in self.tree.body)  # from bpfemu(.api) import Map
        self.functions = {}  # name -> FunctionDef (module level, class methods) or module-level Assign
        self.tests = []  # (qualified test name, FunctionDef)
        for node in self.tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.functions[node.name] = node
                if node.name.startswith("test"):
                    self.tests.append((node.name, node))
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):  # module constants, e.g. TYPES = [...]
                for t in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                    if isinstance(t, ast.Name):
                        self.functions.setdefault(t.id, node)
                    elif isinstance(t, ast.Tuple) and isinstance(node.value, ast.Tuple) and \
                            len(t.elts) == len(node.value.elts):  # Q, S = QUEUE, STACK
                        for name, value in zip(t.elts, node.value.elts):
                            if isinstance(name, ast.Name):
                                self.functions.setdefault(name.id, value)
            elif isinstance(node, ast.ClassDef):
                for sub in node.body:
                    if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        self.functions.setdefault(sub.name, sub)
                        if node.name.startswith("Test") and sub.name.startswith("test"):
                            self.tests.append(("%s.%s" % (node.name, sub.name), sub))


def _direct(fn, uses_api):
    """(commands, map types, names called) a function mentions itself."""
    cmds, types, called = set(), set(), set()
    for n in ast.walk(fn):
        ident = n.id if isinstance(n, ast.Name) else n.attr if isinstance(n, ast.Attribute) else None
        if ident:
            if ident in CMD_NAMES:
                cmds.add(ident)
            elif ident in TYPE_NAMES:
                types.add(ident)
            called.add(ident)
            if uses_api and isinstance(n, ast.Attribute) and ident in API_COMMANDS:
                cmds.update(API_COMMANDS[ident])
        if uses_api and isinstance(n, ast.Constant) and isinstance(n.value, str):
            full = SHORT_TYPE.get(n.value.lower())
            if full:
                types.add(full)
        if uses_api and isinstance(n, ast.Subscript):
            cmds.update(API_COMMANDS[SUBSCRIPT[type(n.ctx)]])
    return cmds, types, called


def coverage():
    """({command: {file: [tests]}}, {map type: {file: [tests]}}) over conformance/*.py."""
    modules = [Module(os.path.join(CONFORMANCE, f)) for f in sorted(os.listdir(CONFORMANCE))
               if f.endswith(".py") and f not in ("__init__.py", "conftest.py")]
    helpers = Module(SUPPORT)
    memo = {}

    def resolve(mod, name, stack):
        """Everything a function reaches: its own mentions plus the helpers it calls."""
        fn = mod.functions.get(name)
        owner = mod
        if fn is None and helpers is not None and mod is not helpers:
            fn, owner = helpers.functions.get(name), helpers
        if fn is None:
            return set(), set()
        key = (owner.name, name)
        if key in memo:
            return memo[key]
        if key in stack:
            return set(), set()
        cmds, types, called = _direct(fn, owner.uses_api)
        for c in called:
            if c != name and (c in owner.functions or (helpers and c in helpers.functions)):
                sub_c, sub_t = resolve(owner, c, stack | {key})
                cmds |= sub_c
                types |= sub_t
        memo[key] = (cmds, types)
        return cmds, types

    by_cmd, by_type = {}, {}
    for mod in modules:
        for tname, fn in mod.tests:
            cmds, types, called = _direct(fn, mod.uses_api)
            for c in called:
                if c in mod.functions or (helpers and c in helpers.functions):
                    sub_c, sub_t = resolve(mod, c, frozenset())
                    cmds |= sub_c
                    types |= sub_t
            for c in cmds:
                by_cmd.setdefault(c, {}).setdefault(mod.name, []).append(tname)
            for t in types:
                by_type.setdefault(t, {}).setdefault(mod.name, []).append(tname)
    return by_cmd, by_type


def _cover_cell(files):
    if not files:
        return "-"
    return ", ".join("%s (%d)" % (f[:-3] if f.endswith(".py") else f, len(t)) for f, t in sorted(files.items()))


PRIVILEGE = {"unprivileged": "none (if unprivileged BPF is enabled)", "CAP_BPF": "CAP_BPF",
             "CAP_NET_ADMIN": "CAP_BPF + CAP_NET_ADMIN"}


def _declared_cell(entry):
    if entry is None:
        return "-"
    ptrs = ", ".join("%s (%s)" % (p.field, p.direction) for p in entry.user_ptrs)
    return "`%s`%s" % (entry.last_field, "; " + ptrs if ptrs else "")


def render():
    by_cmd, by_type = coverage()
    lines = [
        "# Supported commands and map types",
        "",
        "<!-- generated by tools/gen_docs.py from the command table, the map type registry and",
        "     conformance/*.py; do not edit. Regenerate with `python tools/gen_docs.py`;",
        "     CI runs `python tools/gen_docs.py --check`. -->",
        "",
        "Every implemented command answers with the kernel's return value, errno and output bytes. The",
        "*declared* column is the command's entry in `bpfemu/syscall/table.py`: the last attr field it reads",
        "(bytes after it must be zero) and the user memory it may copy (in, out or both), which the host",
        "backend also carries to its child processes; a command can be declared before it is implemented.",
        "The *conformance tests* column names the files under `conformance/` whose tests issue the command,",
        "with the number of such tests; each of them runs on the emulator and on the host kernel.",
        "",
        "## Commands",
        "",
        "| # | command | bpfemu | declared (last field; user memory) | conformance tests |",
        "|---:|---|---|---|---|",
    ]
    done = implemented()
    values = dict(uapi.ENUMS["bpf_cmd"])
    n_impl = 0
    for name in sorted(done, key=lambda n: values[n]):
        ok = done[name]
        n_impl += ok
        lines.append("| %d | `%s` | %s | %s | %s |" % (values[name], name, "implemented" if ok else "not yet",
                                                      _declared_cell(COMMANDS.get(values[name])),
                                                      _cover_cell(by_cmd.get(name, {}))))
    lines += ["", "%d of %d commands implemented." % (n_impl, len(done)), "",
              "## Map types", "",
              "| # | map type | bpfemu | privilege to create | conformance tests |",
              "|---:|---|---|---|---|"]
    n_types = 0
    for value, name in sorted(uapi.MAP_TYPE_NAMES.items()):
        if value == 0:  # BPF_MAP_TYPE_UNSPEC
            continue
        n_types += 1
        entry = MAP_TYPES.get(value)
        lines.append("| %d | `%s` | %s | %s | %s |" % (
            value, name, "implemented (`%s`)" % entry.ops.__name__ if entry else "not yet",
            PRIVILEGE[entry.privilege] if entry else "-", _cover_cell(by_type.get(name, {}))))
    impl_types = sum(1 for v in uapi.MAP_TYPE_NAMES if v and v in MAP_TYPES)
    lines += ["", "%d of %d map types implemented." % (impl_types, n_types), ""]
    return "\n".join(lines)


README = os.path.join(ROOT, "README.md")
BEGIN = "<!-- BEGIN generated by tools/gen_docs.py: do not edit -->"
END = "<!-- END generated -->"


def render_readme_tables():
    """The compact tables the README shows (the full ones, with coverage, are in docs/supported.md)."""
    impl = implemented()
    values = dict(uapi.ENUMS["bpf_cmd"])
    done = [n for n in sorted(impl, key=lambda n: values[n]) if impl[n]]
    todo = [n for n in sorted(impl, key=lambda n: values[n]) if not impl[n]]
    lines = ["**Commands** (%d of %d): implemented: %s." % (len(done), len(impl),
                                                             ", ".join("`%s`" % n[4:] for n in done)),
             "Not yet (they fail with EINVAL and a message naming them): %s." % ", ".join(
                 "`%s`" % n[4:] for n in todo),
             "",
             "| map type | bpfemu | map type | bpfemu |",
             "|---|---|---|---|"]
    rows = []
    for value, name in sorted(uapi.MAP_TYPE_NAMES.items()):
        if value == 0:
            continue
        entry = MAP_TYPES.get(value)
        rows.append(("`%s`" % name[len("BPF_MAP_TYPE_"):], "`%s`" % entry.ops.__name__ if entry else "not yet"))
    half = (len(rows) + 1) // 2
    for i in range(half):
        left = rows[i]
        right = rows[i + half] if i + half < len(rows) else ("", "")
        lines.append("| %s | %s | %s | %s |" % (left + right))
    return "\n".join(lines)


def readme_text():
    with open(README) as f:
        text = f.read()
    if BEGIN not in text or END not in text:
        return text
    head, rest = text.split(BEGIN, 1)
    _old, tail = rest.split(END, 1)
    return head + BEGIN + "\n" + render_readme_tables() + "\n" + END + tail


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true",
                    help="exit 1 if docs/supported.md or the README's tables are not up to date")
    args = ap.parse_args(argv)
    outputs = [(OUT, render()), (README, readme_text())]
    if args.check:
        stale = []
        for path, text in outputs:
            try:
                with open(path) as f:
                    current = f.read()
            except FileNotFoundError:
                current = None
            if current != text:
                stale.append(os.path.relpath(path, ROOT))
        if stale:
            print("%s stale: run `python tools/gen_docs.py` and commit" % ", ".join(stale), file=sys.stderr)
            return 1
        print("docs/supported.md and the README tables are up to date")
        return 0
    for path, text in outputs:
        with open(path, "w") as f:
            f.write(text)
        print("wrote %s" % os.path.relpath(path, ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
