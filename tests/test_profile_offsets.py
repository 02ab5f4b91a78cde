"""The profiles' kernel struct offsets (``Profile.kernel_offsets``, what the xlated program's rewrites use)
against the BTF of a real kernel of each version: the host's own, or the cached Debian kernel
(``tools/fetch_kernels.py``); a version without one is skipped."""
import pytest

from bpfemu import profiles
from bpfemu.prog.fixups import kernel_member_offset
from bpfemu.testing.support import real_kernel_btf


@pytest.mark.parametrize("version", profiles.VERSIONS)
def test_kernel_offsets_are_the_versions_btf(version):
    btf = real_kernel_btf(version)
    if btf is None:
        pytest.skip("no BTF of a %s kernel here" % version)
    p = profiles.get(version)
    assert p.kernel_offsets
    got = {k: kernel_member_offset(btf, *k) for k in p.kernel_offsets}
    assert got == p.kernel_offsets


@pytest.mark.parametrize("version", profiles.VERSIONS)
def test_a_field_a_version_lacks_is_absent(version):
    """6.1 has a vlan_present bit of its own; later versions test vlan_all."""
    btf = real_kernel_btf(version)
    if btf is None:
        pytest.skip("no BTF of a %s kernel here" % version)
    p = profiles.get(version)
    for field in ("vlan_all", "__pkt_vlan_present_offset"):
        assert p.offset("sk_buff", field) == kernel_member_offset(btf, "sk_buff", field)
