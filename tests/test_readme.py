"""The README's commands, examples and printed output stay true."""
import ast
import contextlib
import io
import os
import re
import sys

import bpfemu

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def readme():
    with open(os.path.join(ROOT, "README.md")) as f:
        return f.read()


def sh_blocks():
    return re.findall(r"```sh\n(.*?)```", readme(), re.S)


def test_first_two_commands_install_and_run():
    blocks = sh_blocks()
    assert "bpfemu conform" in blocks[0] and "pip install" in blocks[0]
    assert "pytest" in blocks[1] and "pip install" in blocks[1]


def ci_lines():
    with open(os.path.join(ROOT, ".ci", "run")) as f:
        lines = (re.sub(r"(^|\s+)#.*$", "", line).strip() for line in f)  # comments away
        return [line for line in lines if line]


def test_ci_runs_the_readme_test_command():
    test_cmd = sh_blocks()[1].strip()
    assert test_cmd in ci_lines()
    assert "BPFEMU_REQUIRE_HOST=1" in test_cmd


def test_ci_runs_both_readme_commands_in_a_fresh_venv_of_its_own():
    """Not with whatever the machine has installed: a venv made by the run, activated before the README's
    commands (so their python3 is the venv's), which then run exactly as written."""
    lines = ci_lines()
    assert "set -euo pipefail" in lines  # any nonzero exit fails the run, pytest's 5 (no tests) included
    make = next(i for i, line in enumerate(lines) if line.startswith("python3 -m venv "))
    activate = next(i for i, line in enumerate(lines) if line.startswith(". ") and line.endswith('/bin/activate"'))
    assert "--system-site-packages" not in lines[make] and make < activate
    first, second = (b.strip() for b in sh_blocks()[:2])
    assert activate < lines.index(first) and activate < lines.index(second)
    assert "BPFEMU_PLATFORM=nonlinux python3 -m pytest -q" in lines[activate:]


def _imports(path):
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            yield node.module.split(".")[0]


# import name -> distribution, where they differ
DISTRIBUTIONS = {"_pytest": "pytest", "elftools": "pyelftools"}


def test_every_third_party_import_of_the_package_is_a_dependency():
    """The install the README's commands make is enough: what bpfemu (its pytest plugin and the shipped
    conformance suite included) imports outside the standard library is in pyproject's dependencies, the
    optional matplotlib aside."""
    with open(os.path.join(ROOT, "pyproject.toml")) as f:
        text = f.read()
    deps = re.search(r"^dependencies = \[(.*?)\]", text, re.M | re.S).group(1)
    declared = {re.split(r"[<>=!~ ]", d.strip().strip('"'))[0].lower() for d in deps.split(",") if d.strip()}
    found = set()
    for base in (os.path.join(ROOT, "bpfemu"), os.path.join(ROOT, "conformance")):
        for d, _dirs, files in os.walk(base):
            for name in files:
                if name.endswith(".py"):
                    found.update(_imports(os.path.join(d, name)))
    third = {m for m in found if m not in sys.stdlib_module_names and m not in ("bpfemu", "conformance")}
    needed = {DISTRIBUTIONS.get(m, m).lower() for m in third} - {"matplotlib"}
    assert needed and needed <= declared, needed - declared


def test_readme_python_examples_run_and_print_what_the_readme_shows():
    blocks = re.findall(r"```(python|text)\n(.*?)```", readme(), re.S)
    ran = 0
    for i, (lang, code) in enumerate(blocks):
        if lang != "python" or "cmd, attr" in code:  # the surface overview is not runnable
            continue
        ns = {}
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, "README.md", "exec"), ns)
        for name, fn in list(ns.items()):
            if name.startswith("test_") and callable(fn):
                fn(bpfemu.Kernel().spawn())  # the plugin example: bpf_sys is a fresh privileged task
        if i + 1 < len(blocks) and blocks[i + 1][0] == "text":
            assert out.getvalue() == blocks[i + 1][1]
        ran += 1
    assert ran >= 3
