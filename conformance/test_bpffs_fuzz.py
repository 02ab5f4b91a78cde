"""A differential bpffs fuzzer: random namespace operations by privileged and unprivileged tasks on the
emulator and on the host, compared step by step.

Both machines get the same sandbox: a root-owned 0755 directory ``S`` under /tmp holding ``S/u/v/w/mnt``, a
fresh bpffs mount (on the emulator at the very same path, so that path lengths agree byte for byte).
Four tasks act: root with every capability, uid 0 without capabilities, uid 1000 and uid 1001 (no
capabilities); the unprivileged ones got three maps from root by SCM_RIGHTS, and one more map is kept
alive only by a pin. Each step is one operation the emulator offers on a namespace -- mkdir, rmdir,
unlink, rename (and renameat2's flags), stat, lstat, symlink, readlink, chmod, chown, listdir, statfs, open_dir, OBJ_PIN and OBJ_GET, with or without BPF_F_PATH_FD and
a directory fd opened earlier (possibly of a directory removed since) -- on random paths: components
from a small pool (existing and new names, ``.``, ``..``, a dotted name, the preloaded ``maps.debug``, names
of 255 and 256 bytes), doubled and trailing slashes, the bpffs root, the sandbox above it, and paths of
4094 to 4097 bytes. ``..`` never climbs above the sandbox.

After every step: the result (value or errno; for stat the mode, link count and owners; for listdir the
names; for OBJ_GET which map the fd opens) must be equal, and so must a snapshot of the whole sandbox
(every entry's name, type, mode, owners, link count, which map a pin holds) and which maps are alive.

The suite runs a few seeds briefly (``test_bpffs_matches_host``); a long run is
``python -m conformance.test_bpffs_fuzz SEED_FROM SEED_TO [STEPS_PER_SEED]`` (runs made: docs/robustness.md).
"""
import ctypes
import errno
import os
import random
import shutil
import stat
import sys

import pytest

from bpfemu import Host, Kernel, profiles, uapi as u
from bpfemu.host.libc import mount, umount
from bpfemu.testing.backends import need_host
from bpfemu.testing.support import create_map, err, map_fd_by_id, map_info, obj_get, pin

COMMON = ["a", "b", "c", "d", "p", "q"]
RARE = ["x.y", "maps.debug", "n" * 255, "n" * 256, ".", "..", "mnt", "keep"]
MODES = [0o777, 0o755, 0o700, 0o1777, 0o711, 0o000, 0o1733]
CREDS = [("root", 0, None), ("root-nocaps", 0, ()), ("u1000", 1000, ()), ("u1001", 1001, ())]
OPS = ["mkdir"] * 4 + ["pin"] * 4 + ["rmdir"] * 2 + ["unlink"] * 2 + ["rename"] * 4 + ["stat"] * 2 + \
    ["listdir", "statfs", "open_dir", "open_dir", "get", "get", "get", "close_dir"] + \
    ["symlink"] * 3 + ["lstat", "readlink"] + ["chmod", "chown"]
CHMODS = MODES + [0o644, 0o666, 0o400, 0o200, 0o2777, 0o2755, 0o4600, 0o6750, 0o2640, 0o7777, 0o100755]
IDS = [-1, -1, 0, 1000, 1001]
# Symlink bodies. None resolves above the bpffs root or to the root itself: a symlink always leads to an entry
# one level or more below it, so the '..' a path may still hold after it climbs at most two levels above the
# mount (the sandbox has three spare levels there, UP)
BODIES = ["a", "b", "d", "p", "q", "a/p", "p/", "x.y", "keep", "n" * 256, "nowhere", "a/../q", "d/a/"]
ABS_BODIES = ["a", "d", "p", "q", "a/p", "keep", "d/q/"]
UP = "/u/v/w"


class Side:
    """One machine: its tasks (by name), the maps by index, and the directory fds each task holds."""

    def __init__(self, name, top):
        """top: the sandbox's own directory; the bpffs is mounted at top/u/v/w/mnt (``sandbox`` is
        top/u/v/w, the directory that paths reach with '..' from the bpffs root)."""
        self.name, self.top = name, top
        self.sandbox = top + UP
        self.mnt = self.sandbox + "/mnt"
        self.tasks, self.map_ids, self.dirs = {}, [], {c[0]: [] for c in CREDS}

    def setup(self, bpf_preload=None):
        if self.name == "emu":
            # the host's kernel version and build (this machine's bpffs is the other side, with or without
            # CONFIG_BPF_PRELOAD's maps.debug), whatever --bpf-kernel says
            self.kernel = Kernel(version=profiles.host_version() or profiles.NEWEST, bpf_preload=bpf_preload)
            self.kernel.fs.makedirs(self.sandbox, 0o755)  # top and the levels of UP
            self.kernel.mount_bpffs(self.mnt)
            spawn = self.kernel.spawn
            self.admin = self.kernel.spawn()
        else:
            os.mkdir(self.top, 0o755)
            os.chmod(self.top, 0o755)
            p = self.top
            for part in UP.split("/")[1:]:
                p += "/" + part
                os.mkdir(p, 0o755)
                os.chmod(p, 0o755)
            os.mkdir(self.mnt, 0o755)
            mount("bpf", self.mnt, "bpf")
            self.host = Host()
            spawn = self.host.spawn
            self.admin = Host()
        old = os.umask(0o022)
        try:
            for name, uid, caps in CREDS:
                self.tasks[name] = spawn(uid=uid, caps=caps)
        finally:
            os.umask(old)
        root = self.tasks["root"]
        fds = [create_map(root, u.BPF_MAP_TYPE_HASH, 4, 8, 4) for _ in range(3)]
        for name in ("root-nocaps", "u1000", "u1001"):
            got = root.send_fds(self.tasks[name], fds)
            assert got == fds, (self.name, got, fds)
        kept = create_map(root, u.BPF_MAP_TYPE_HASH, 4, 8, 4)
        pin(root, kept, self.mnt + "/keep")
        self.map_ids = [map_info(root, fd).id for fd in fds + [kept]]
        root.close(kept)

    def map_index(self, task, fd):
        return self.map_ids.index(map_info(task, fd).id)

    def close(self):
        for t in self.tasks.values():
            t.exit()
        if self.name == "host":
            try:
                umount(self.mnt)
            finally:
                shutil.rmtree(self.top, ignore_errors=True)

    # -- what both machines are compared on ------------------------------------------------------------
    def snapshot(self):
        """The sandbox as root sees it: (path, type, mode, uid, gid, nlink, map index or a symlink's body)
        of every entry (symlinks are not followed), and the indices of the maps alive."""
        out = []
        adm = self.admin

        def visit(path):
            for name in sorted(adm.listdir(path)):
                p = path + "/" + name
                st = adm.lstat(p)
                which = adm.readlink(p) if stat.S_ISLNK(st.st_mode) else None
                if stat.S_ISREG(st.st_mode) and p.startswith(self.mnt + "/") and not name.endswith(".debug"):
                    fd = obj_get(adm, p)
                    which = self.map_index(adm, fd)
                    adm.close(fd)
                out.append((p[len(self.top):], stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid,
                            st.st_gid, st.st_nlink, which))
                if stat.S_ISDIR(st.st_mode):
                    visit(p)

        visit(self.top)
        alive = []
        for i, mid in enumerate(self.map_ids):
            try:
                fd = map_fd_by_id(adm, mid)
            except OSError as e:
                assert e.errno == errno.ENOENT
                continue
            adm.close(fd)
            alive.append(i)
        return out, alive


# -- the generator --------------------------------------------------------------------------------------

def gen_path(rng, mnt, sandbox):
    """A path: mostly absolute under the bpffs root, sometimes the sandbox itself or a path near PATH_MAX."""
    r = rng.random()
    if r < 0.04:
        return rng.choice([mnt, mnt + "/", sandbox, sandbox + "/", mnt + "/.", mnt + "/..", mnt + "//"])
    if r < 0.08:
        name = rng.choice(["a", "p", "q", "d/x"])
        total = rng.choice([4094, 4095, 4096, 4097])
        fill = total - len(mnt.encode()) - 1 - len(name)
        dots = "./" * (fill // 2) + ("/" if fill % 2 else "")
        return mnt + "/" + dots + name
    depth, comps, level = rng.choice([1, 1, 1, 1, 2, 2, 2, 3, 3, 4]), [], 0
    for _ in range(depth):
        c = rng.choice(RARE if rng.random() < 0.25 else COMMON)
        if c == ".." and level <= -1:
            c = "a"
        level += -1 if c == ".." else 0 if c == "." else 1
        comps.append(c)
    sep = "//" if rng.random() < 0.05 else "/"
    p = mnt + "/" + sep.join(comps)
    if rng.random() < 0.2:
        p += rng.choice(["/", "//"])
    return p


def gen_step(rng, mnt, sandbox):
    op = rng.choice(OPS)
    who = rng.choice([c[0] for c in CREDS] + ["root", "u1000"])
    step = {"op": op, "who": who, "path": gen_path(rng, mnt, sandbox)}
    if op == "mkdir":
        step["mode"] = rng.choice(MODES)
    elif op == "rename":
        step["new"] = gen_path(rng, mnt, sandbox)
        # renameat2 flags: NOREPLACE, EXCHANGE, both (EINVAL), unknown (EINVAL); not WHITEOUT, which outside the
        # bpffs would make a whiteout on the host's /tmp (the conformance tests try it on bpffs)
        step["flags"] = rng.choice([0] * 6 + [1, 2, 2, 3, 8])
    elif op in ("pin", "get"):
        step["map"] = rng.randrange(3)
        step["flags"] = rng.choice([0, 0, 0, u.BPF_F_RDONLY, u.BPF_F_WRONLY])
        if rng.random() < 0.3:  # relative to a directory fd the task opened
            step["dir"] = rng.randrange(4)
            step["abs"] = step["path"]  # used when the task holds no directory fd
            step["path"] = rng.choice(["a", "b", "p", "q", "a/p", "../a", "../p", ".", "x.y", "p/", "d/../q",
                                       "n" * 256, "..", "../.."])
    elif op == "close_dir":
        step["dir"] = rng.randrange(4)
    elif op == "chmod":
        step["mode"] = rng.choice(CHMODS)
    elif op == "chown":
        step["uid"], step["gid"] = rng.choice(IDS), rng.choice(IDS)
    elif op == "symlink":  # a relative body, or an absolute path like the others
        step["body"] = rng.choice(BODIES) if rng.random() < 0.7 else mnt + "/" + rng.choice(ABS_BODIES)
    return step


def _result(fn, *args, **kw):
    try:
        return ("ok", fn(*args, **kw))
    except OSError as e:
        return ("err", errno.errorcode.get(e.errno, e.errno))


def do_step(side, step):
    """Run one step on one machine: a comparable result."""
    t = side.tasks[step["who"]]
    op, p = step["op"], step["path"]
    if op == "mkdir":
        return _result(t.mkdir, p, step["mode"])
    if op in ("rmdir", "unlink"):
        return _result(getattr(t, op), p)
    if op == "rename":
        return _result(t.rename, p, step["new"], step["flags"])
    if op == "symlink":
        return _result(t.symlink, step["body"], p)
    if op == "chmod":
        return _result(t.chmod, p, step["mode"])
    if op == "chown":
        return _result(t.chown, p, step["uid"], step["gid"])
    if op == "readlink":
        return _result(t.readlink, p)
    if op in ("stat", "lstat"):
        r = _result(getattr(t, op), p)
        if r[0] == "ok":
            st = r[1]
            r = ("ok", (st.st_mode, st.st_uid, st.st_gid, st.st_nlink))
        return r
    if op == "listdir":
        return _result(t.listdir, p)
    if op == "statfs":
        r = _result(t.statfs, p)  # outside bpffs the filesystems differ (tmpfs, ext4): only "bpffs or not"
        return ("ok", r[1].f_type == u.BPF_FS_MAGIC) if r[0] == "ok" else r
    if op == "open_dir":
        r = _result(t.open_dir, p)
        if r[0] == "ok":
            side.dirs[step["who"]].append(r[1])
        return r
    if op == "close_dir":
        dirs = side.dirs[step["who"]]
        if not dirs:
            return ("skip", None)
        return _result(t.close, dirs.pop(step["dir"] % len(dirs)))
    # OBJ_PIN / OBJ_GET, maybe relative to a directory fd
    kw = {}
    if "dir" in step:
        dirs = side.dirs[step["who"]]
        if dirs:
            kw = {"file_flags": u.BPF_F_PATH_FD, "path_fd": dirs[step["dir"] % len(dirs)]}
        else:
            p = step["abs"]
    if op == "pin":
        return _result(pin, t, 3 + step["map"], p, **kw)
    kw["file_flags"] = kw.get("file_flags", 0) | step["flags"]
    r = _result(obj_get, t, p, **kw)
    if r[0] == "ok":
        fd = r[1]
        r = ("ok", (fd, side.map_index(t, fd)))  # a write-only fd can still be asked for its info
        t.close(fd)
    return r


def replay(seed, steps, sandbox_base=None, out=None):
    """Run ``steps`` random steps from ``seed`` on both machines; returns (steps done, first disagreement
    or None)."""
    rng = random.Random("bpffs/%d" % seed)
    base = sandbox_base or "/tmp/bpfemu-fsfz-%d-%d" % (os.getpid(), seed)
    emu, host = Side("emu", base), Side("host", base)
    try:
        host.setup()
        emu.setup(bpf_preload="maps.debug" in os.listdir(host.mnt))
        log = []
        for i in range(steps):
            step = gen_step(rng, emu.mnt, emu.sandbox)
            r1, r2 = do_step(emu, step), do_step(host, step)
            log.append((step, r2))
            if r1 != r2:
                return i, _short("step %d %r: emu %r, host %r" % (i, step, r1, r2)) + "\nafter " + _tail(log)
            s1, s2 = emu.snapshot(), host.snapshot()
            if s1 != s2:
                return i, _short("step %d %r (%r): the namespaces differ:\n emu  %r\n host %r" % (
                    i, step, r1, s1, s2)) + "\nafter " + _tail(log)
        return steps, None
    finally:
        emu.close()
        host.close()


def _short(text):
    return text.replace("n" * 256, "<n*256>").replace("n" * 255, "<n*255>")


def _tail(log, n=12):
    return "\n  ".join(_short(repr(x)) for x in log[-n - 1:-1])


# -- in the suite -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(1, 7))
def test_bpffs_matches_host(seed):
    need_host()
    done, problem = replay(seed, int(os.environ.get("BPFEMU_FS_FUZZ_STEPS", 300)))
    assert problem is None, problem


def test_generator_reaches_the_corners():
    """The paths the generator makes include every shape the fuzzer is meant to cover."""
    rng = random.Random(0)
    paths = [gen_path(rng, "/s/mnt", "/s") for _ in range(3000)]
    assert any(p.endswith("/") for p in paths) and any("//" in p for p in paths)
    assert any("/../" in p for p in paths) and any("/./" in p or p.endswith("/.") for p in paths)
    assert any(len(p) == 4096 for p in paths) and any(len(p) == 4095 for p in paths)
    assert any("n" * 256 in p for p in paths) and any("x.y" in p for p in paths)
    assert any("/maps.debug" in p for p in paths) and any(p.endswith("/mnt") for p in paths)
    for p in paths:  # '..' never leaves the sandbox
        level = 0
        for c in p[len("/s/mnt/"):].split("/") if p.startswith("/s/mnt/") else []:
            level += -1 if c == ".." else 0 if c in (".", "") else 1
            assert level >= -1, p


if __name__ == "__main__":
    lo, hi = int(sys.argv[1]), int(sys.argv[2])
    per = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
    total = bad = 0
    for s in range(lo, hi + 1):
        done, problem = replay(s, per)
        total += done
        if problem:
            bad += 1
            print("seed %d: DISAGREEMENT %s" % (s, problem), flush=True)
        print("seed %d: %d steps (total %d steps, %d seeds with a disagreement)" % (s, done, total, bad), flush=True)
