"""The README's commands and example stay true."""
import os
import re

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


def test_readme_python_examples_run():
    for block in re.findall(r"```python\n(.*?)```", readme(), re.S):
        if "kernel = bpfemu.Kernel(ncpus=2)" in block and "cmd, attr" in block:
            continue  # the surface overview, not a runnable example
        exec(compile(block, "README.md", "exec"), {})
