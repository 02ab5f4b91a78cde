"""The README's commands, examples and printed output stay true."""
import contextlib
import io
import os
import re

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


def test_ci_runs_the_readme_test_command():
    test_cmd = sh_blocks()[1].strip()
    with open(os.path.join(ROOT, ".ci", "run")) as f:
        ci = f.read()
    assert test_cmd in ci.splitlines()
    assert "BPFEMU_REQUIRE_HOST=1" in test_cmd


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
