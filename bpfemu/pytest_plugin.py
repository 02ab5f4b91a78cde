"""pytest plugin of bpfemu (registered through the pytest11 entry point)."""
import pytest

import bpfemu


@pytest.fixture
def bpf_kernel():
    """A fresh emulated kernel for one test."""
    return bpfemu.Kernel()


@pytest.fixture
def bpf_sys(bpf_kernel):
    """A privileged task on a fresh emulated kernel."""
    return bpf_kernel.spawn()
