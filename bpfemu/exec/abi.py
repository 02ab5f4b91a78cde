"""The Linux x86_64 syscall ABI that ``bpfemu exec`` meets: syscall numbers and the user structs
it fills in (struct stat, struct statx, struct statfs, struct linux_dirent64).

Numbers are arch/x86/entry/syscalls/syscall_64.tbl; layouts are the x86_64 ones of
arch/x86/include/uapi/asm/stat.h, include/uapi/linux/stat.h (statx), statfs64 and dirent.
"""
import platform
import struct

from .. import hostenv

ARCH = platform.machine()
AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH = AUDIT_ARCH_X86_64

NR = {
    "read": 0, "write": 1, "open": 2, "close": 3, "stat": 4, "fstat": 5, "lstat": 6, "mmap": 9,
    "mprotect": 10, "access": 21, "fcntl": 72, "getdents": 78, "chdir": 80, "rename": 82, "mkdir": 83,
    "rmdir": 84, "creat": 85, "link": 86, "unlink": 87, "symlink": 88, "readlink": 89, "statfs": 137,
    "fstatfs": 138, "getdents64": 217, "openat": 257, "mkdirat": 258, "mknodat": 259, "newfstatat": 262,
    "unlinkat": 263, "renameat": 264, "linkat": 265, "symlinkat": 266, "readlinkat": 267, "faccessat": 269,
    "renameat2": 316, "seccomp": 317, "memfd_create": 319, "bpf": 321, "statx": 332, "pidfd_open": 434,
    "close_range": 436, "openat2": 437, "pidfd_getfd": 438, "faccessat2": 439, "mknod": 133,
    "getxattr": 191, "lgetxattr": 192, "listxattr": 194, "llistxattr": 195,
}
NAMES = {v: k for k, v in NR.items()}


def supported():
    """(True, '') when this machine's ABI is the one described here: Linux (seccomp user notification is how
    bpfemu exec hears the calls) on x86_64."""
    if not hostenv.is_linux():
        return False, "bpfemu exec needs Linux (seccomp user notification): %s" % hostenv.not_linux_reason()
    if ARCH != "x86_64":
        return False, "bpfemu exec knows the x86_64 syscall ABI only (this is %s)" % ARCH
    return True, ""


AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_REMOVEDIR = 0x200
AT_EMPTY_PATH = 0x1000

O_ACCMODE = 0o3
O_WRONLY = 0o1
O_RDWR = 0o2
O_CREAT = 0o100
O_EXCL = 0o200
O_TRUNC = 0o1000
O_NONBLOCK = 0o4000
O_DIRECTORY = 0o200000
O_NOFOLLOW = 0o400000
O_CLOEXEC = 0o2000000
O_PATH = 0o10000000
O_TMPFILE = 0o20000000 | O_DIRECTORY
O_LARGEFILE = 0o100000

PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4
MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE, MAP_ANONYMOUS = 1, 2, 3, 0x20
F_GETFL = 3
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2

S_IFMT = 0o170000
S_IFDIR = 0o040000
S_IFREG = 0o100000
DT_DIR, DT_REG = 4, 8

# struct stat (x86_64): dev ino nlink mode uid gid pad rdev size blksize blocks atime(ns) mtime(ns) ctime(ns) unused[3]
STAT = struct.Struct("<QQQIIIiQqqqQQQQQQ3q")
# struct statfs (x86_64): type bsize blocks bfree bavail files ffree fsid[2] namelen frsize flags spare[4]
STATFS = struct.Struct("<qqQQQQQiiqqq4q")
STATX_SIZE = 256
STATX_HEAD = struct.Struct("<IIQIIIHHQQQQ")  # mask blksize attributes nlink uid gid mode spare ino size blocks attr_mask
STATX_TS = struct.Struct("<qIi")
STATX_DEV = struct.Struct("<IIIIQ")  # rdev major/minor, dev major/minor, mnt_id
STATX_BASIC_STATS = 0x7FF
STATX_MNT_ID = 0x1000
DIRENT64_HEAD = struct.Struct("<QqHB")  # d_ino d_off d_reclen d_type, then the name and a NUL
ST_VALID, ST_RELATIME = 0x20, 0x1000


def pack_stat(dev, ino, mode, nlink, uid, gid, size=0, blksize=4096, blocks=0, rdev=0, time=(0, 0)):
    sec, nsec = time
    return STAT.pack(dev, ino, nlink, mode, uid, gid, 0, rdev, size, blksize, blocks,
                     sec, nsec, sec, nsec, sec, nsec, 0, 0, 0)


def pack_statx(dev, ino, mode, nlink, uid, gid, size=0, blksize=4096, blocks=0, mnt_id=0, time=(0, 0)):
    out = bytearray(STATX_SIZE)
    STATX_HEAD.pack_into(out, 0, STATX_BASIC_STATS | STATX_MNT_ID, blksize, 0, nlink, uid, gid, mode, 0, ino, size,
                         blocks, 0)
    for off in (64, 96, 112):  # atime, ctime, mtime (no btime)
        STATX_TS.pack_into(out, off, time[0], time[1], 0)
    STATX_DEV.pack_into(out, 128, 0, 0, dev >> 8 & 0xFFF, (dev & 0xFF) | (dev >> 12 & 0xFFF00), mnt_id)
    return bytes(out)


def pack_statfs(f_type, bsize=4096, namelen=255, flags=ST_VALID | ST_RELATIME, fsid=(0, 0)):
    return STATFS.pack(f_type, bsize, 0, 0, 0, 0, 0, fsid[0], fsid[1], namelen, bsize, flags, 0, 0, 0, 0)


def dirent64(ino, off, dtype, name):
    """One struct linux_dirent64 record, padded to 8 bytes."""
    raw = name.encode("utf-8", "surrogateescape") + b"\0"
    reclen = (DIRENT64_HEAD.size + len(raw) + 7) & ~7
    return DIRENT64_HEAD.pack(ino, off, reclen, dtype) + raw + bytes(reclen - DIRENT64_HEAD.size - len(raw))
