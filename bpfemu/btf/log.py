"""kernel/bpf/log.c: the verifier log that BPF_BTF_LOAD (and BPF_PROG_LOAD) fill.

The caller gives ``log_level``, a buffer address and ``log_size``. Each message
is formatted into a 1024-byte scratch buffer (so one message is at most 1023
bytes) and copied to the user buffer as it is produced:

- ``BPF_LOG_FIXED`` (level bit 8): the log fills the buffer from the start and
  stops when it is full (the last byte is always the terminating NUL);
- otherwise the buffer is a ring: it keeps the *last* ``log_size - 1`` bytes,
  and :meth:`VerifierLog.finalize` rotates them to the start of the buffer.

``finalize`` reports ``log_true_size`` (the size the whole log needs, NUL
included) and gives ENOSPC when the log did not fit, or EFAULT when writing it
faulted. The user buffer is any object with ``write(offset, data)`` and
``read(offset, n)`` that raise ``OSError`` on a fault; a ``bytearray`` is
accepted as such a buffer.
"""
import errno

from ..errors import bpf_error

BPF_LOG_LEVEL1 = 1
BPF_LOG_LEVEL2 = 2
BPF_LOG_STATS = 4
BPF_LOG_FIXED = 8
BPF_LOG_LEVEL = BPF_LOG_LEVEL1 | BPF_LOG_LEVEL2
BPF_LOG_MASK = BPF_LOG_LEVEL | BPF_LOG_STATS | BPF_LOG_FIXED
BPF_LOG_KERNEL = BPF_LOG_MASK + 1  # kernel-internal: messages go to the kernel log, not to a buffer
BPF_VERIFIER_TMP_LOG_SIZE = 1024
UINT_MAX = 0xFFFFFFFF


class BytesBuffer:
    """A user buffer backed by a bytearray (for callers outside the syscall layer)."""

    __slots__ = ("data",)

    def __init__(self, size_or_bytes):
        self.data = bytearray(size_or_bytes)

    def write(self, off, data):
        if off + len(data) > len(self.data):
            raise bpf_error(errno.EFAULT, "log write past the end of the buffer")
        self.data[off:off + len(data)] = data

    def read(self, off, n):
        if off + n > len(self.data):
            raise bpf_error(errno.EFAULT, "log read past the end of the buffer")
        return bytes(self.data[off:off + n])

    def text(self):
        """The log as the user sees it: the bytes before the first NUL."""
        i = self.data.find(b"\0")
        return bytes(self.data if i < 0 else self.data[:i])


class VerifierLog:
    """struct bpf_verifier_log: level, user buffer, size, and the log window positions."""

    __slots__ = ("level", "ubuf", "len_total", "start_pos", "end_pos", "len_max", "true_size")

    def __init__(self, level=0, ubuf=None, len_total=0):
        if isinstance(ubuf, (bytearray, bytes)):
            ubuf = BytesBuffer(ubuf)
        self.level = level
        self.ubuf = ubuf
        self.len_total = len_total
        self.start_pos = 0
        self.end_pos = 0
        self.len_max = 0
        self.true_size = 0

    @classmethod
    def init(cls, level, ubuf, size):
        """bpf_vlog_init: the log for these attr fields, or EINVAL when they do not make sense."""
        log = cls(level, ubuf, size)
        if (log.ubuf is not None) != bool(size):
            raise bpf_error(errno.EINVAL, "log_buf and log_size must be given together")
        if log.ubuf is not None and level == 0:
            raise bpf_error(errno.EINVAL, "log_buf without log_level")
        if level & ~BPF_LOG_MASK:
            raise bpf_error(errno.EINVAL, "unknown log_level bits 0x%x" % level)
        if size > UINT_MAX >> 2:
            raise bpf_error(errno.EINVAL, "log_size above UINT_MAX >> 2")
        return log

    @property
    def needed(self):
        return self.level != 0

    def vlog(self, msg):
        """Append one formatted message (bytes); bpf_verifier_vlog."""
        if not self.level:
            return
        msg = msg[:BPF_VERIFIER_TMP_LOG_SIZE - 1]
        if self.level == BPF_LOG_KERNEL:
            return
        n = len(msg) + 1  # with its terminating NUL
        total = self.end_pos + n
        if total > UINT_MAX:
            self.len_max = UINT_MAX
        elif total > self.len_max:
            self.len_max = total
        if self.level & BPF_LOG_FIXED:
            new_n = 0
            if self.end_pos < self.len_total:
                new_n = min(self.len_total - self.end_pos, n)
            cur = self.end_pos
            self.end_pos += n - 1
            if self.ubuf is not None and new_n:
                chunk = (msg + b"\0")[:new_n - 1] + b"\0"
                self._write(cur, chunk)
            return
        new_end = self.end_pos + n
        if new_end - self.start_pos >= self.len_total:
            new_start = new_end - self.len_total
        else:
            new_start = self.start_pos
        self.start_pos = new_start
        self.end_pos = new_end - 1
        if self.ubuf is None:
            return
        kbuf = msg + b"\0"
        new_n = min(n, self.len_total)
        cur = new_end - new_n
        buf_start = cur % self.len_total
        buf_end = new_end % self.len_total
        if buf_end == 0:
            buf_end = self.len_total
        if buf_start < buf_end:
            self._write(buf_start, kbuf[n - new_n:n - new_n + buf_end - buf_start])
        else:
            if self._write(buf_start, kbuf[n - new_n:n - new_n + self.len_total - buf_start]):
                self._write(0, kbuf[n - buf_end:n])

    def _write(self, off, data):
        if self.ubuf is None:
            return False
        try:
            self.ubuf.write(off, data)
            return True
        except OSError:
            self.ubuf = None
            return False

    def reset(self, new_pos):
        """bpf_vlog_reset: drop what was logged after position new_pos."""
        if new_pos > self.end_pos or not self.level or self.level == BPF_LOG_KERNEL:
            return
        self.end_pos = new_pos
        if self.end_pos < self.start_pos:
            self.start_pos = self.end_pos
        if self.ubuf is None:
            return
        if self.level & BPF_LOG_FIXED:
            pos = self.end_pos + 1
        else:
            pos = new_pos % self.len_total
        if pos < self.len_total:
            self._write(pos, b"\0")

    def _reverse(self, start, end):
        """Reverse ubuf[start:end] in place through the user buffer (bpf_vlog_reverse_ubuf)."""
        n = BPF_VERIFIER_TMP_LOG_SIZE // 2
        while end - start > 1:
            nn = min(n, (end - start) // 2)
            left = self.ubuf.read(start, nn)[::-1]
            right = self.ubuf.read(end - nn, nn)[::-1]
            self.ubuf.write(start, right)
            self.ubuf.write(end - nn, left)
            start += nn
            end -= nn

    def finalize(self):
        """bpf_vlog_finalize: (errno or 0, log_true_size); rotates a wrapped ring log into place."""
        if not self.level or self.level == BPF_LOG_KERNEL:
            return 0, 0
        if self.ubuf is not None and self.start_pos != 0:
            sublen = self.len_total - self.start_pos % self.len_total
            try:
                self._reverse(0, self.len_total)
                self._reverse(0, sublen)
                self._reverse(sublen, self.len_total)
            except OSError:
                self.ubuf = None
        true_size = self.len_max
        if (self.ubuf is not None) != bool(self.len_total):
            return errno.EFAULT, true_size
        if self.ubuf is not None and self.len_max > self.len_total:
            return errno.ENOSPC, true_size
        return 0, true_size


class HeadLog(VerifierLog):
    """The log before 6.4 (6.1's ``bpf_verifier_vlog``): it fills the buffer from the start and stops when
    full, always NUL-terminated; there is no rotation, no ``BPF_LOG_FIXED`` and no ``log_true_size``.

    Its attributes are valid only together: a level (of ``BPF_LOG_LEVEL | BPF_LOG_STATS``), a buffer and a
    size of at least 128 bytes (``bpf_verifier_log_attr_valid``), else EINVAL; a write that faults drops
    the buffer silently. :meth:`full` is what the loaders check at their end: a load that otherwise
    succeeds is ENOSPC when its log filled up (:attr:`enospc_when_full`).
    """

    __slots__ = ("len_used",)
    enospc_when_full = True
    MASK = BPF_LOG_LEVEL | BPF_LOG_STATS
    MIN_SIZE = 128

    def __init__(self, level=0, ubuf=None, len_total=0):
        super().__init__(level, ubuf, len_total)
        self.len_used = 0

    @classmethod
    def init(cls, level, ubuf, size):
        log = cls(level, ubuf, size)
        if level or log.ubuf is not None or size:
            if not (cls.MIN_SIZE <= size <= UINT_MAX >> 2 and level and log.ubuf is not None
                    and not level & ~cls.MASK):
                raise bpf_error(errno.EINVAL, "log attrs: a level of 0x%x, a buffer, and at least %d bytes"
                                % (cls.MASK, cls.MIN_SIZE))
        return log

    def full(self):
        return self.len_used >= self.len_total - 1

    def vlog(self, msg):
        if self.level == BPF_LOG_KERNEL or not self.level or self.ubuf is None or self.full():
            return
        msg = msg[:BPF_VERIFIER_TMP_LOG_SIZE - 1]
        n = min(self.len_total - self.len_used - 1, len(msg))
        if self._write(self.len_used, msg[:n] + b"\0"):
            self.len_used += n

    def reset(self, new_pos):
        if self.level == BPF_LOG_KERNEL or not self.level or self.ubuf is None or self.full():
            return
        self.len_used = new_pos
        self._write(new_pos, b"\0")

    def finalize(self):
        """No rotation and no true size: (0, 0)."""
        return 0, 0
