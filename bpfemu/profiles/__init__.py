"""Kernel-version profiles: ``bpfemu.Kernel(version="6.1")`` behaves as that version.

:data:`PROFILES` maps a version ("6.1", "6.12", "6.18") to its :class:`~bpfemu.profiles.profile.Profile`,
declared in its own module (``v6_18.py`` is the newest; each older one declares what it does differently
from the next newer). :func:`default_version` is the version a ``Kernel()`` gets without one: the one
:func:`set_default` chose (the pytest plugin's ``--bpf-kernel``), else the host's when a profile matches
it, else the newest.
"""
import platform

from .. import hostenv
from . import v6_1, v6_12, v6_18
from .profile import FACTS, Profile  # noqa: F401

PROFILES = {p.version: p for p in (v6_18.PROFILE, v6_12.PROFILE, v6_1.PROFILE)}
VERSIONS = sorted(PROFILES, key=lambda v: tuple(int(x) for x in v.split(".")))  # oldest first
NEWEST = VERSIONS[-1]

_default = None
_default_bpf_preload = True


def version_of_release(release):
    """The profile version a kernel release ("6.12.117+deb12-amd64") is, or None when no profile has it."""
    parts = release.split(".")
    if len(parts) < 2:
        return None
    minor = "".join(c for c in parts[1] if c.isdigit()) if parts[1][:1].isdigit() else ""
    v = "%s.%s" % (parts[0], minor)
    return v if v in PROFILES else None


def host_version():
    """The profile version of the machine's own kernel, or None (not Linux, or a version without a profile)."""
    if not hostenv.is_linux():
        return None
    return version_of_release(platform.release())


def set_default(version, bpf_preload=True):
    """Make ``version`` what ``Kernel()`` is without one (None: back to the host's or the newest), and
    ``bpf_preload`` its CONFIG_BPF_PRELOAD (a build option, not a version's: kept here beside it because the
    pytest plugin sets both for a session, to match the real kernel it compares with)."""
    global _default, _default_bpf_preload
    if version is not None:
        get(version)
    _default = version
    _default_bpf_preload = bool(bpf_preload)


def default_bpf_preload():
    """Whether ``Kernel()`` without ``bpf_preload`` has it (see :func:`set_default`; True unless changed)."""
    return _default_bpf_preload


def default_version():
    """What ``Kernel()`` is without a version: :func:`set_default`'s, else the host's, else the newest."""
    return _default or host_version() or NEWEST


def get(version=None):
    """The profile of ``version`` (None: :func:`default_version`); ValueError naming the known ones."""
    v = default_version() if version is None else str(version)
    p = PROFILES.get(v)
    if p is None:
        raise ValueError("no kernel profile %r (there are %s)" % (version, ", ".join(VERSIONS)))
    return p
