"""The kernel's raw BTF selftests, on both backends, against the host's recorded outcomes.

The blobs are rebuilt at run time from a kernel tree (see conformance/corpus/btf.py;
no tree, no cases). For each one the backend's BPF_BTF_LOAD must give what the
host kernel gave when conformance/corpus/btf_host.json was recorded
(``python -m conformance.corpus.btf record``): the errno with and without a
log, the log's last line (its cause), the whole log (by digest) and
log_true_size. A blob the record does not know is compared with the live host
instead, when there is one.
"""
import pytest

from bpfemu import uapi as U
from bpfemu.testing.backends import need_host, real_kernel
from bpfemu.testing.support import attr_has
from .corpus.btf import blob_key, load_record, outcome, raw_tests

CASES = raw_tests()
RECORD = load_record()["cases"]


def test_selftests_found():
    if not CASES:
        pytest.skip("no kernel tree with tools/testing/selftests/bpf/prog_tests/btf.c (set BPFEMU_KERNEL_SRC)")
    assert not [c for c in CASES if c.error], "selftest entries the C reader could not evaluate"


def _datasec_not_identifier(blob):
    """Whether the blob (as the newest kernel reads it) has a DATASEC whose name is not an identifier."""
    import re
    from bpfemu.btf import load
    from bpfemu.btf import uapi as K
    btf = load(blob, 0, 0)[0]
    if btf is None:
        return False
    for i in range(1, btf.nr_types_total()):
        t = btf.type_by_id(i)
        if t.kind == K.BTF_KIND_DATASEC and not re.fullmatch(rb"[A-Za-z_.][A-Za-z0-9_.]*",
                                                               btf.str_by_offset(t.name_off) or b""):
            return True
    return False


def _tag_with_kflag(blob):
    """Whether the blob (as the newest kernel reads it) has a DECL_TAG or TYPE_TAG with kind_flag set."""
    from bpfemu.btf import load
    from bpfemu.btf import uapi as K
    btf = load(blob, 0, 0)[0]
    if btf is None:
        return False
    tags = (K.BTF_KIND_DECL_TAG, K.BTF_KIND_TYPE_TAG)
    return any(t.kind in tags and t.kflag for t in (btf.type_by_id(i) for i in range(1, btf.nr_types_total())))


@pytest.mark.parametrize("case", CASES, ids=["%d-%s" % (c.index, c.descr) for c in CASES])
def test_raw_selftest(proc, profile, case):
    if profile.btf_section_names != "printable" and _datasec_not_identifier(case.blob):
        pytest.skip("the recording is 6.18's, where a DATASEC name may be any printable string; %s wants an "
                    "identifier (profile.btf_section_names)" % profile.version)
    if not profile.btf_tag_kflag and _tag_with_kflag(case.blob):
        pytest.skip("the recording is 6.18's, where a DECL_TAG or TYPE_TAG may set kind_flag; %s refuses it "
                    "(profile.btf_tag_kflag)" % profile.version)
    expected = RECORD.get(blob_key(case.blob))
    if expected is None:
        need_host()
        expected = outcome(real_kernel(), case.blob)
    got = outcome(proc, case.blob)
    assert (got["errno"], got["cause"]) == (expected["errno"], expected["cause"])
    assert got["errno_nolog"] == expected["errno_nolog"]
    # (the field is 6.4's: before, it is past BTF_LOAD's last field and stays 0)
    has = attr_has(profile, U.BPF_BTF_LOAD, "btf_log_true_size")
    assert got["log_true_size"] == (expected["log_true_size"] if has else 0)
    assert got["log_sha256"] == expected["log_sha256"]
