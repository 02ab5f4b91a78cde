"""Settings for running this repository's suites (tests/ and conformance/) from a checkout.

No test writes into the tree: hypothesis keeps no example database, and its other caches (it would
write .hypothesis/ here) go to a temporary directory, removed at the end of the session.
"""
import shutil
import tempfile

from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

settings.register_profile("bpfemu-repo", database=None)
settings.load_profile("bpfemu-repo")
_HOME = tempfile.mkdtemp(prefix="bpfemu-hypothesis-")
set_hypothesis_home_dir(_HOME)


def pytest_unconfigure(config):
    shutil.rmtree(_HOME, ignore_errors=True)
