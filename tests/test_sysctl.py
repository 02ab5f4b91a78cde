"""kernel.unprivileged_bpf_disabled on the emulator (the host's can only be proved at its current value, in
conformance/test_privileges.py: once it is 1 it cannot be lowered again, and changing it would affect the
whole machine)."""
import errno

import pytest

import bpfemu
from bpfemu import uapi as u
from bpfemu.host.sysinfo import host_unprivileged_bpf_disabled
from bpfemu.testing.support import create_map, err, get_next_id, hash_map

OK, EPERM = 0, errno.EPERM


@pytest.mark.parametrize("value,unpriv_create", [(0, OK), (1, EPERM), (2, EPERM)])
def test_unprivileged_bpf_disabled_sysctl_on_the_emulator(value, unpriv_create):
    k = bpfemu.Kernel(unprivileged_bpf_disabled=value)
    t = k.spawn(uid=1000)
    assert err(hash_map, t, flags=0) == unpriv_create
    assert err(create_map, t, u.BPF_MAP_TYPE_ARRAY) == unpriv_create
    # types that need a capability stay refused, and so do the id commands
    assert err(create_map, t, u.BPF_MAP_TYPE_LRU_HASH) == EPERM
    assert err(get_next_id, t, 0) == EPERM


def test_the_emulator_defaults_to_the_host_sysctl():
    assert bpfemu.Kernel().sysctl["kernel.unprivileged_bpf_disabled"] == host_unprivileged_bpf_disabled()


def test_cpumap_limit_follows_kernel_max():
    import errno
    from bpfemu import Kernel, uapi as u
    from bpfemu.testing.support import create_map, err
    t = Kernel(ncpus=2, kernel_max=3).spawn()
    assert err(create_map, t, u.BPF_MAP_TYPE_CPUMAP, 4, 4, 4) == 0
    assert err(create_map, t, u.BPF_MAP_TYPE_CPUMAP, 4, 4, 5) == errno.E2BIG
    with __import__("pytest").raises(ValueError):
        Kernel(ncpus=8, kernel_max=3)
