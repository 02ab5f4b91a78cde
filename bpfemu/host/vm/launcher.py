"""Booting a real kernel under QEMU: a busybox initramfs, the host's root over 9p, the agent on a serial port.

``Launch(kernel, ...)`` writes an initramfs (static busybox from Debian's busybox-static, the
kernel's virtio/9p modules, an init script), starts ``qemu-system-x86_64`` with TCG (this
machine's /dev/kvm cannot run stock kernels, and QEMU does not fall back by itself), and
listens on the unix socket QEMU's virtio-serial port connects to. The guest's init mounts
the host's root read-only over 9p, makes it the root (switch_root: the root of the mount namespace,
so that a task entering another namespace lands in it too) with proc, sysfs, devtmpfs, a tmpfs on
/tmp, bpffs on /sys/fs/bpf and cgroup2 on /sys/fs/cgroup, and execs the agent
(:mod:`bpfemu.host.vm.guest`) with this very Python and this very bpfemu.
"""
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile

from ..sysinfo import host_protected_symlinks
from . import wire

QEMU = "qemu-system-x86_64"
# the directory bpfemu/ is in: the guest runs this very checkout (bpfemu/host/vm/launcher.py is 4 levels down)
PROJECT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")


class LaunchError(RuntimeError):
    """QEMU, busybox or the kernel is missing, or the guest did not come up (the message says which)."""


def find_qemu():
    path = os.environ.get("BPFEMU_QEMU") or shutil.which(QEMU)
    if not path or not os.access(path, os.X_OK):
        raise LaunchError("%s not found (apt-get install qemu-system-x86, or set BPFEMU_QEMU)" % QEMU)
    return path


def find_busybox():
    """A statically linked busybox (the initramfs has no libc), or LaunchError."""
    cands = [os.environ["BPFEMU_BUSYBOX"]] if os.environ.get("BPFEMU_BUSYBOX") else BUSYBOX_CANDIDATES
    for path in cands:
        if os.path.exists(path) and _is_static(path):
            return path
    raise LaunchError("no static busybox (apt-get install busybox-static, or set BPFEMU_BUSYBOX)")


def _is_static(path):
    """An ELF without a PT_INTERP program header."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:
                return False
            phoff, = struct.unpack_from("<Q", head, 32)
            phentsize, phnum = struct.unpack_from("<HH", head, 54)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return False
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != 3 for i in range(phnum))  # PT_INTERP


# -- the initramfs --------------------------------------------------------------

class Cpio:
    """A newc cpio archive built in memory (no cpio tool, no privileges for device nodes)."""

    def __init__(self):
        self.out = bytearray()
        self.ino = 1

    def _entry(self, name, mode, data=b"", rdev=(0, 0), nlink=1):
        name_b = name.encode() + b"\0"
        hdr = "070701" + "".join("%08X" % v for v in (
            self.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1], len(name_b), 0))
        self.ino += 1
        self.out += hdr.encode() + name_b
        self.out += bytes(-len(self.out) % 4)
        self.out += data
        self.out += bytes(-len(self.out) % 4)

    def dir(self, name):
        self._entry(name, 0o040755, nlink=2)

    def file(self, name, data, mode=0o644):
        self._entry(name, 0o100000 | mode, data)

    def chardev(self, name, major, minor):
        self._entry(name, 0o020600, rdev=(major, minor))

    def finish(self):
        self._entry("TRAILER!!!", 0)
        return bytes(self.out)


INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules.order); do insmod /modules/$m || echo "bpfemu-init: insmod $m failed"; done
R=/newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 {tag} $R ||
    {{ echo "bpfemu-init: 9p mount failed"; poweroff -f; }}
mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t devtmpfs devtmpfs $R/dev
# the guest's /tmp is its own, but what the agent runs from (a checkout or venv under this machine's /tmp)
# stays visible: bound from the 9p view before the tmpfs hides it
mkdir -p /keep && mount -o bind $R/tmp /keep
mount -t tmpfs -o mode=1777 tmpfs $R/tmp
for d in {keep_tmp}; do mkdir -p $R/tmp/$d && mount -o bind /keep/$d $R/tmp/$d; done
umount -l /keep
mount -t bpf bpf $R/sys/fs/bpf
# the machine's fs.protected_symlinks, not Debian's (its kernels default it to 1, the kernel to 0): a
# machine setting, which the emulated twin takes from this machine too
echo {protected_symlinks} > /proc/sys/fs/protected_symlinks
mount -t cgroup2 cgroup2 $R/sys/fs/cgroup
[ -d $R/dev/shm ] && mount -t tmpfs tmpfs $R/dev/shm
PORT=
for p in /sys/class/virtio-ports/*; do [ "$(cat $p/name)" = "{port}" ] && PORT=/dev/${{p##*/}}; done
[ -n "$PORT" ] || {{ echo "bpfemu-init: no virtio port {port}"; poweroff -f; }}
echo "bpfemu-init: up, agent on $PORT"
cd /
export PYTHONPATH={pythonpath} PYTHONDONTWRITEBYTECODE=1 HOME=/tmp
exec switch_root $R {python} -S {project}/bpfemu/host/vm/guest_boot.py {project} $PORT
"""


def tmp_dirs_of(paths):
    """The top-level directories under /tmp that ``paths`` live in (the guest mounts its own /tmp over
    them, then binds these back)."""
    out = []
    for p in paths:
        parts = os.path.realpath(p).split("/") if p else []
        if len(parts) > 2 and parts[1] == "tmp" and parts[2] and parts[2] not in out:
            out.append(parts[2])
    return out


def build_initramfs(kernel, python, project, pythonpath):
    """The initramfs (bytes) for a :class:`bpfemu.host.vm.kernels.Cached` kernel."""
    c = Cpio()
    for d in ("bin", "dev", "proc", "sys", "modules", "newroot"):
        c.dir(d)
    c.chardev("dev/console", 5, 1)
    c.chardev("dev/null", 1, 3)
    with open(find_busybox(), "rb") as f:
        c.file("bin/busybox", f.read(), 0o755)
    order = []
    for path in kernel.modules:
        with open(path, "rb") as f:
            c.file("modules/" + os.path.basename(path), f.read())
        order.append(os.path.basename(path))
    c.file("modules.order", ("\n".join(order) + "\n").encode())
    init = INIT.format(tag=wire.MOUNT_TAG, port=wire.PORT_NAME, python=python, project=project,
                       pythonpath=pythonpath, protected_symlinks=host_protected_symlinks(),
                       keep_tmp=" ".join(tmp_dirs_of([python, project] + pythonpath.split(":"))))
    c.file("init", init.encode(), 0o755)
    return c.finish()


# -- QEMU ---------------------------------------------------------------------------

def qemu_command(qemu, kernel, initrd, sock_path, console_path, memory_mb, cpus, append="", ram_path=None,
                 task_socks=()):
    cmdline = "console=ttyS0 quiet loglevel=4 panic=-1 rdinit=/init mitigations=off " \
              "i8042.noaux i8042.nokbd i8042.nopnp tsc=reliable " + append
    return [
        qemu, "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
        "-machine", "q35,accel=tcg" + (",memory-backend=ram" if ram_path else ""), "-cpu", "max",
        "-m", "%dM" % memory_mb,
    ] + ([
        "-object", "memory-backend-file,id=ram,size=%dM,mem-path=%s,share=on" % (memory_mb, ram_path),
    ] if ram_path else []) + [
        # as many CPUs as the host has possible (per-CPU value sizes follow them); all online, as a
        # CPU that is only hotpluggable is not possible to 6.12 under QEMU's ACPI tables (the agent
        # keeps the tasks on CPU 0: no cross-CPU wakeups to emulate)
        "-smp", "%d" % cpus,
        "-kernel", kernel.vmlinuz, "-initrd", initrd, "-append", cmdline.strip(),
        "-chardev", "file,id=con,path=%s" % console_path, "-serial", "chardev:con",
        "-fsdev", "local,id=root,path=/,security_model=none,readonly=on,multidevs=remap",
        "-device", "virtio-9p-pci,fsdev=root,mount_tag=%s" % wire.MOUNT_TAG,
        "-device", "virtio-serial-pci,id=vser,max_ports=%d" % (len(task_socks) + 2),
        "-chardev", "socket,id=rpc,path=%s" % sock_path,
        "-device", "virtserialport,bus=vser.0,chardev=rpc,name=%s" % wire.PORT_NAME,
    ] + [arg for i, (name, path) in enumerate(task_socks) for arg in (
        "-chardev", "socket,id=task%d,path=%s,server=on,wait=off" % (i, path),
        "-device", "virtserialport,bus=vser.0,chardev=task%d,name=%s" % (i, name))] + [
        "-monitor", "none", "-display", "none",
    ]


def site_packages():
    """This Python's site-packages directories (the guest runs it with -S, so without the site module)."""
    import site
    dirs = list(site.getsitepackages())
    user = site.getusersitepackages() if site.ENABLE_USER_SITE else None
    if user and os.path.isdir(user):
        dirs.append(user)
    return [d for d in dirs if os.path.isdir(d)]


def host_cpus():
    """How many CPUs the host kernel calls possible (the guest gets as many, so per-CPU sizes agree)."""
    from ..sysinfo import host_possible_cpus
    return host_possible_cpus() or os.cpu_count() or 1


def _die_with_parent():
    """In the QEMU child before exec: SIGKILL when the process that started it dies (no orphaned guests)."""
    import ctypes
    ctypes.CDLL(None).prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGKILL


class Launch:
    """A started QEMU with its guest agent's serial port connected (``.sock``)."""

    def __init__(self, kernel, memory_mb=512, cpus=None, workdir=None, timeout=120, task_ports=0):
        self.qemu = find_qemu()
        self.kernel = kernel
        self.cpus = cpus or host_cpus()
        self.dir = workdir or tempfile.mkdtemp(prefix="bpfemu-vm-%s-" % kernel.version)
        os.chmod(self.dir, 0o755)
        self.console = os.path.join(self.dir, "console.log")
        initrd = os.path.join(self.dir, "initramfs.cpio")
        project = PROJECT
        with open(initrd, "wb") as f:
            f.write(build_initramfs(kernel, os.path.realpath(sys.executable), project,
                                    ":".join([project] + site_packages())))
        # the guest's RAM is a shared file, so that the host can map the guest pages of a map's mmap
        if memory_mb > 2048:
            raise LaunchError("memory_mb above 2048 is not supported (guest RAM must stay below the PCI hole)")
        # (made, sized and unlinked here, handed to QEMU as /proc/self/fd/N: nothing to leak if we die)
        shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else self.dir
        self.ram_fd, ram_path = tempfile.mkstemp(prefix="bpfemu-vm-ram-", dir=shm)
        os.unlink(ram_path)
        os.ftruncate(self.ram_fd, memory_mb << 20)
        self.ram_path = "/proc/self/fd/%d" % self.ram_fd
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(os.path.join(self.dir, wire.PORT_NAME + ".sock"))
        listener.listen(1)
        # QEMU listens on the task ports' sockets; we connect once the guest is up (connect_task_ports)
        # so that each port's "host connected" message reaches a ready guest (at boot, QEMU drops
        # control messages the guest has no buffer for, and many ports at once overflow them)
        self.task_paths = [(wire.TASK_PORT_PREFIX + str(i), os.path.join(self.dir, "task%d.sock" % i))
                           for i in range(task_ports)]
        self.cmd = qemu_command(self.qemu, kernel, initrd, os.path.join(self.dir, wire.PORT_NAME + ".sock"),
                                self.console, memory_mb, self.cpus, os.environ.get("BPFEMU_VM_APPEND", ""),
                                self.ram_path, self.task_paths)
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent,
                                     pass_fds=(self.ram_fd,))
        self.task_socks = {}
        listener.settimeout(timeout)
        try:
            self.sock, _ = listener.accept()
        except socket.timeout:
            self.kill()
            raise LaunchError("QEMU did not connect its serial port within %ds: %s" % (timeout, self.why()))
        finally:
            listener.close()

    def connect_task_ports(self):
        """Connect to QEMU's task port sockets: {port name: socket}."""
        for name, path in self.task_paths:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
            except OSError:
                s.close()
                continue
            self.task_socks[name] = s
        return self.task_socks

    def check_ram(self):
        """LaunchError unless the guest's RAM file (which the host maps guest pages from) is sized."""
        if os.fstat(self.ram_fd).st_size == 0:
            raise LaunchError("the guest RAM file is empty")

    def why(self):
        """The end of QEMU's output and of the guest console, for error messages."""
        out = ""
        if self.proc.poll() is not None and self.proc.stdout:
            out = self.proc.stdout.read().decode(errors="replace").strip()
            out = "qemu exited %s: %s; " % (self.proc.returncode, out[-800:])
        try:
            with open(self.console, errors="replace") as f:
                con = f.read()[-1500:]
        except OSError:
            con = ""
        return out + "guest console (%s): ...%s" % (self.console, con)

    def rss_kib(self):
        """QEMU's resident memory (KiB): what one guest costs the host."""
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return None

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def cleanup(self):
        self.kill()
        for s in self.task_socks.values():
            s.close()
        self.task_socks = {}
        if self.ram_fd is not None:
            os.close(self.ram_fd)
            self.ram_fd = None
        if self.proc.stdout:
            self.proc.stdout.close()
        if not os.environ.get("BPFEMU_VM_KEEP"):  # keep the console log and initramfs for debugging
            shutil.rmtree(self.dir, ignore_errors=True)
