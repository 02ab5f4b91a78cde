"""bpfemu.uapi is byte-exact for the running kernel: regenerate it from the host's BTF and compare.

This is a host-side check (it reads /sys/kernel/btf/vmlinux, not the syscall), so it has no emulator twin;
it runs wherever that file is readable and is required with BPFEMU_REQUIRE_HOST=1.
"""
import ctypes
import os

import pytest

from bpfemu import hostenv, uapi, uapi_gen
from bpfemu.testing.backends import host_required

BTF = "/sys/kernel/btf/vmlinux"


def _need_btf():
    if not hostenv.is_linux():
        pytest.skip("no kernel BTF to compare with: %s" % hostenv.not_linux_reason())
    if not os.access(BTF, os.R_OK):
        if host_required():
            pytest.fail("BPFEMU_REQUIRE_HOST=1 but %s is not readable" % BTF)
        pytest.skip("%s not readable: no kernel BTF to compare with" % BTF)


def test_layout_module_matches_the_running_kernel():
    _need_btf()
    text, sizes = uapi_gen.generate(BTF)
    with open(uapi_gen.OUTPUT) as f:
        assert f.read() == text, "bpfemu/uapi_layout.py is stale: run python tools/gen_uapi.py"
    assert sizes["bpf_attr"] == uapi.ATTR_SIZE == ctypes.sizeof(uapi.bpf_attr)
    assert sizes["bpf_map_info"] == ctypes.sizeof(uapi.bpf_map_info)


def test_every_command_of_the_kernel_is_known():
    _need_btf()
    b = uapi_gen.BTF(BTF)
    cmds = dict(b.types[b.find("bpf_cmd", "enum")]["values"])
    for name, value in cmds.items():
        if not name.startswith("__"):
            assert getattr(uapi, name) == value
