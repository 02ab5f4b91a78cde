"""/proc/<pid>/fdinfo/<fd>: the VFS lines, then the object's own (``show_fdinfo`` of the bpf object).

For a map the object's lines are bpf_map_show_fdinfo's (:meth:`bpfemu.maps.bpf_map.BpfMap.show_fdinfo`),
whose ``memlock`` is the map type's ``mem_usage``; this module knows no object kinds or map types.

``mnt_id`` and ``ino`` belong to the kernel's single anonymous inode that every
bpf-map fd shares; their numbers depend on the boot, so the emulator prints
fixed ones (:data:`ANON_MNT_ID`, :data:`ANON_INO`) and comparisons ignore them.
"""
from .objects import FMODE_READ, FMODE_WRITE

ANON_MNT_ID = 15
ANON_INO = 1
O_WRONLY = 0o1
O_RDWR = 0o2
O_CLOEXEC = 0o2000000


def file_flags(f, cloexec):
    """The ``flags`` of fdinfo: the file's f_flags (for a bpf anon-inode file only the access mode:
    anon_inode_getfile keeps O_ACCMODE and O_NONBLOCK of the flags it is given) with O_CLOEXEC added when
    the fd has close-on-exec set (seq_show asks close_on_exec(fd), not the file). A dup(2) of a
    MAP_CREATE fd so shows ``02``, the fd itself ``02000002``."""
    mode = f.mode & (FMODE_READ | FMODE_WRITE)
    acc = O_RDWR if mode == FMODE_READ | FMODE_WRITE else O_WRONLY if mode == FMODE_WRITE else 0
    return acc | (O_CLOEXEC if cloexec else 0)


def fdinfo(f, cloexec=True):
    """The text of /proc/<pid>/fdinfo/<fd> for the open file f, installed with or without close-on-exec."""
    obj = f.obj
    if obj is None:  # a terminal or a directory
        return "pos:\t0\nflags:\t0%o\nmnt_id:\t%d\nino:\t%d\n" % (
            O_RDWR | (O_CLOEXEC if cloexec else 0), ANON_MNT_ID, ANON_INO + 1)
    lines = [("pos", "0"), ("flags", "0%o" % file_flags(f, cloexec)), ("mnt_id", str(ANON_MNT_ID)),
             ("ino", str(ANON_INO))] + obj.show_fdinfo()
    return "".join("%s:\t%s\n" % kv for kv in lines)
