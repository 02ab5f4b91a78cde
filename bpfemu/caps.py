"""Capabilities the model knows (include/uapi/linux/capability.h): their numbers, names and sets.

The bpf ones (CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, CAP_SYS_ADMIN) and the filesystem overrides root has on
bpffs (CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID). The emulated tasks, bpffs permission checks and
the host backend (which drops a child's capabilities with capset(2)) all use these.
"""

CAP_CHOWN = 0
CAP_DAC_OVERRIDE = 1
CAP_DAC_READ_SEARCH = 2
CAP_FOWNER = 3
CAP_FSETID = 4
CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39

CAP_NAMES = {"CAP_CHOWN": CAP_CHOWN, "CAP_FSETID": CAP_FSETID, "CAP_DAC_OVERRIDE": CAP_DAC_OVERRIDE, "CAP_DAC_READ_SEARCH": CAP_DAC_READ_SEARCH,
             "CAP_FOWNER": CAP_FOWNER, "CAP_NET_ADMIN": CAP_NET_ADMIN, "CAP_SYS_ADMIN": CAP_SYS_ADMIN,
             "CAP_PERFMON": CAP_PERFMON, "CAP_BPF": CAP_BPF}
ALL_CAPS = frozenset(CAP_NAMES.values())


def cap_set(caps):
    """A frozenset of capability numbers from names ('CAP_BPF') or numbers; None means every one."""
    if caps is None:
        return ALL_CAPS
    return frozenset(CAP_NAMES[c] if isinstance(c, str) else int(c) for c in caps)


def cap_names(caps):
    """Human-readable: 'all caps', 'no caps' or the names joined by commas (numbers for unknown ones)."""
    caps = frozenset(caps)
    if caps >= ALL_CAPS:
        return "all caps"
    if not caps:
        return "no caps"
    names = {v: k for k, v in CAP_NAMES.items()}
    return ",".join(names.get(c, str(c)) for c in sorted(caps))
