"""bpfemu.uapi is byte-exact for the running kernel: regenerate it from the host's BTF and compare.

This is a host-side check (it reads /sys/kernel/btf/vmlinux, not the syscall), so it has no emulator twin;
it runs wherever that file is readable and is required with BPFEMU_REQUIRE_HOST=1.
"""
import ctypes
import os
import sys

import pytest

from bpfemu import uapi

from bpfemu.testing.backends import host_required

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BTF = "/sys/kernel/btf/vmlinux"


def _gen():
    if not os.access(BTF, os.R_OK):
        if host_required():
            pytest.fail("BPFEMU_REQUIRE_HOST=1 but %s is not readable" % BTF)
        pytest.skip("%s not readable: no kernel BTF to compare with" % BTF)
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        import gen_uapi
    finally:
        sys.path.pop(0)
    return gen_uapi


def test_layout_module_matches_the_running_kernel():
    gen = _gen()
    text, sizes = gen.generate(BTF)
    with open(os.path.join(ROOT, "bpfemu", "uapi_layout.py")) as f:
        assert f.read() == text, "bpfemu/uapi_layout.py is stale: run python tools/gen_uapi.py"
    assert sizes["bpf_attr"] == uapi.ATTR_SIZE == ctypes.sizeof(uapi.bpf_attr)
    assert sizes["bpf_map_info"] == ctypes.sizeof(uapi.bpf_map_info)


def test_every_command_of_the_kernel_is_known():
    _gen()
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        from btfdump import BTF as Btf
    finally:
        sys.path.pop(0)
    b = Btf(BTF)
    cmds = dict(b.types[b.find("bpf_cmd", "enum")]["values"])
    for name, value in cmds.items():
        if not name.startswith("__"):
            assert getattr(uapi, name) == value
