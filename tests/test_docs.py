"""The docs are tested: every example runs, every shown output is what it prints, the tables are current.

In docs/quickstart.md:
- a ```python block runs (all such blocks of a page share one namespace, in order);
- a ```text output block right after it must equal what that block printed;
- a ```python test_x.py block is a test file: it is run by pytest in a temp dir with the bpfemu plugin and
  ``--bpf-backend=both`` (the host half is skipped where the host cannot run it, or required with
  BPFEMU_REQUIRE_HOST=1).
"""
import contextlib
import importlib.util
import io
import os
import re
import shutil
import subprocess
import sys

import pytest

import bpfemu
from bpfemu.syscall.sys_bpf import implemented

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICKSTART = os.path.join(ROOT, "docs", "quickstart.md")
FENCE = re.compile(r"^```(\w*)[ \t]*([^\n]*)\n(.*?)^```[ \t]*$", re.M | re.S)


def blocks(path):
    """[(lang, info, body)] of the fenced blocks of a markdown file, in order."""
    with open(path) as f:
        return [(m.group(1), m.group(2).strip(), m.group(3)) for m in FENCE.finditer(f.read())]


def _test_files(path):
    return [(info, body) for lang, info, body in blocks(path) if lang == "python" and info.endswith(".py")]


def host_ok():
    return bpfemu.host.available()[0]


def test_quickstart_has_examples_for_each_audience():
    with open(QUICKSTART) as f:
        text = f.read()
    for heading in ("## Testing a loader without root", "## Running the same test on the host kernel",
                    "## Differential testing of a kernel"):
        assert heading in text
    assert len(_test_files(QUICKSTART)) >= 2


def run_page(path):
    """Run a page's python blocks in order in one namespace, checking each text output block; (ran, checked)."""
    namespace = {"__name__": os.path.basename(path)}
    last_output = None
    checked = ran = 0
    for lang, info, body in blocks(path):
        if lang == "python" and not info:
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(body, "%s:block%d" % (path, ran), "exec"), namespace)
            last_output = out.getvalue()
            ran += 1
        elif lang == "text" and info == "output":
            assert last_output is not None, "an output block must follow a python block"
            assert last_output.rstrip("\n") == body.rstrip("\n")
            checked += 1
            last_output = None
    return ran, checked


def test_quickstart_python_blocks_run_and_print_what_is_shown():
    ran, checked = run_page(QUICKSTART)
    assert ran >= 3 and checked >= 3


API = os.path.join(ROOT, "docs", "api.md")


def test_api_reference_examples_run_and_print_what_is_shown():
    ran, checked = run_page(API)
    assert ran >= 6 and checked >= 6


def test_api_reference_names_every_public_method_and_attribute():
    from bpfemu.api import Batch, BpfError, MapInfo
    from bpfemu.api.handle import Handle
    with open(API) as f:
        text = f.read()
    names = {n for n in dir(bpfemu.Map) if not n.startswith("_") and n not in ("kind", "PAGE")}
    names |= {n for n in vars(Handle) if not n.startswith("_") and n != "kind"}
    names |= {"items", "next", "keys", "values", "type_name", "as_dict", "command", "target", "detail", "count"}
    missing = sorted(n for n in names if "`m.%s" % n not in text and "`%s" % n not in text
                     and "`Map.%s" % n not in text)
    assert missing == []
    for cls in (Batch, MapInfo, BpfError):
        assert "`%s`" % cls.__name__ in text


@pytest.mark.parametrize("name,body", _test_files(QUICKSTART), ids=[n for n, _b in _test_files(QUICKSTART)])
def test_quickstart_test_files_pass_on_both_backends(tmp_path, name, body):
    (tmp_path / name).write_text(body)
    args = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "bpfemu.testing.pytest_plugin", "-p", "no:cacheprovider",
            "--rootdir", str(tmp_path), "--bpf-backend=both", name]
    if os.environ.get("BPFEMU_REQUIRE_HOST") == "1":
        args.append("--bpf-require-host")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    r = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    n = len(re.findall(r"^def test_", body, re.M))
    if "bpf_backend" in body and host_ok():
        n *= 2  # each test ran on the emulator and on the host
    assert re.search(r"\b%d passed" % n, r.stdout), r.stdout


def _gen_docs():
    spec = importlib.util.spec_from_file_location("gen_docs", os.path.join(ROOT, "tools", "gen_docs.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_supported_tables_are_up_to_date():
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "gen_docs.py"), "--check"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, "docs/supported.md is stale: run `python tools/gen_docs.py`\n" + r.stderr


def test_gen_docs_check_fails_when_stale(tmp_path, monkeypatch):
    """--check fails on stale copies and a rewrite makes them current; the repository's own files are
    only read (the copies live in tmp_path)."""
    gen = _gen_docs()
    stale, readme = tmp_path / "supported.md", tmp_path / "README.md"
    stale.write_text("old\n")
    shutil.copy(gen.README, readme)
    monkeypatch.setattr(gen, "OUT", str(stale))
    monkeypatch.setattr(gen, "README", str(readme))
    assert gen.main(["--check"]) == 1
    assert gen.main([]) == 0 and gen.main(["--check"]) == 0
    with open(os.path.join(ROOT, "docs", "supported.md")) as f:
        assert stale.read_text() == f.read()


def test_supported_tables_follow_the_dispatch_table():
    gen = _gen_docs()
    text = gen.render()
    for name, ok in implemented().items():
        row = next(line for line in text.splitlines() if "| `%s` |" % name in line)
        assert ("| implemented |" in row) == ok
    create = next(line for line in text.splitlines() if "| `BPF_MAP_CREATE` |" in line)
    assert "test_api (" in create  # conformance/test_api.py creates maps through bpfemu.Map


CONTRIBUTING = os.path.join(ROOT, "docs", "contributing.md")


def test_contributing_quotes_the_code_as_it_is():
    """Each ```python <path> block of docs/contributing.md stands verbatim in that file."""
    quoted = [(info, body) for lang, info, body in blocks(CONTRIBUTING) if lang == "python" and info]
    assert len(quoted) >= 4
    for path, body in quoted:
        with open(os.path.join(ROOT, path)) as f:
            assert body in f.read(), "docs/contributing.md quotes %s, which no longer holds:\n%s" % (path, body)


def test_contributing_lists_every_module():
    with open(CONTRIBUTING) as f:
        text = f.read()
    missing = [name for _d, _dirs, files in os.walk(os.path.join(ROOT, "bpfemu"))  # does not enter the link
               for name in files if name.endswith(".py") and name != "__init__.py" and name + "`" not in text]
    assert missing == []
