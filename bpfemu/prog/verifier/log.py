"""The verifier log (kernel/bpf/log.c): levels, the fixed and rotating buffer modes, truncation.

The kernel writes each message into the user buffer as it goes. Here the whole text is kept (it is what a
buffer of any size would have seen) together with the positions the kernel tracks, and :meth:`finalize`
computes what the user buffer ends up holding for the requested size and mode, and the errno the kernel
returns for it:

- ``len_max`` is the longest the log ever was (``log_true_size`` written back to attr), counting the NUL;
- the rotating mode (default) keeps the last ``log_size - 1`` bytes, BPF_LOG_FIXED the first;
- a log that did not fit turns any result into ENOSPC (``bpf_vlog_finalize``);
- ``reset(pos)`` forgets what was written after ``pos`` (the verifier erases the trace of a path that
  verified, and the line of an instruction it re-prints), but ``len_max`` keeps its maximum.

Each message is cut to 1023 bytes, as the kernel's 1 KiB formatting buffer does.
"""
import errno

BPF_LOG_LEVEL1 = 1
BPF_LOG_LEVEL2 = 2
BPF_LOG_STATS = 4
BPF_LOG_FIXED = 8
BPF_LOG_LEVEL = BPF_LOG_LEVEL1 | BPF_LOG_LEVEL2
BPF_LOG_MASK = BPF_LOG_LEVEL | BPF_LOG_STATS | BPF_LOG_FIXED
BPF_LOG_KERNEL = BPF_LOG_MASK + 1
TMP_LOG_SIZE = 1024
UINT_MAX = (1 << 32) - 1


def log_attr_valid(level, has_buf, size, mode="rotating"):
    """bpf_verifier_log_attr_valid: buf and size together, a buffer needs a level, known bits only. The head
    log of older kernels (``mode`` "head", a profile's ``verifier_log``: 6.1) asks, once any of the three is
    set, for all of them, 128 bytes or more and no BPF_LOG_FIXED."""
    if mode == "head":
        if not (level or has_buf or size):
            return True
        return 128 <= size <= UINT_MAX >> 2 and bool(level) and has_buf and not level & ~(BPF_LOG_LEVEL |
                                                                                          BPF_LOG_STATS)
    if has_buf != bool(size):
        return False
    if has_buf and level == 0:
        return False
    if level & ~BPF_LOG_MASK:
        return False
    if size > UINT_MAX >> 2:
        return False
    return True


class VerifierLog:
    """struct bpf_verifier_log. ``level`` 0 means nothing is recorded (verbose() is a no-op)."""

    __slots__ = ("level", "has_buf", "len_total", "parts", "end_pos", "len_max", "start_pos", "mode",
                 "liveness_marks")

    def __init__(self, level=0, has_buf=False, size=0, mode="rotating", liveness_marks=False):
        self.mode = mode  # "rotating" (6.4) or "head" (the buffer keeps the start; full is ENOSPC)
        self.liveness_marks = liveness_marks  # a state's registers carry _r/_w/_D (kernels before 6.18)
        self.level = level
        self.has_buf = has_buf
        self.len_total = size
        self.parts = []          # the text, in messages
        self.end_pos = 0         # bytes written (without the NUL)
        self.len_max = 0
        self.start_pos = 0

    def __bool__(self):
        return self.level != 0

    def write(self, s):
        """bpf_verifier_vlog for an already formatted message."""
        if len(s) >= TMP_LOG_SIZE:
            s = s[:TMP_LOG_SIZE - 1]
        n = len(s) + 1
        ln = self.end_pos + n
        if ln > UINT_MAX:
            ln = UINT_MAX
        if ln > self.len_max:
            self.len_max = ln
        self.parts.append(s)
        self.end_pos += len(s)
        if not (self.level & BPF_LOG_FIXED) and self.len_total:
            new_end = self.end_pos + 1
            if new_end - self.start_pos >= self.len_total:
                self.start_pos = new_end - self.len_total

    def reset(self, new_pos):
        """bpf_vlog_reset: drop what follows position new_pos."""
        if not self.level or new_pos > self.end_pos:
            return
        drop = self.end_pos - new_pos
        while drop > 0:
            last = self.parts[-1]
            if len(last) <= drop:
                self.parts.pop()
                drop -= len(last)
            else:
                self.parts[-1] = last[:len(last) - drop]
                drop = 0
        self.end_pos = new_pos
        if self.end_pos < self.start_pos:
            self.start_pos = self.end_pos

    def text(self):
        """Everything written (what a large enough buffer holds)."""
        if len(self.parts) > 1:
            self.parts[:] = ["".join(self.parts)]
        return self.parts[0] if self.parts else ""

    def finalize(self):
        """bpf_vlog_finalize: (bytes the user buffer holds, NUL included; log_true_size; errno or 0).

        The bytes are None when there is no buffer. Only the bytes up to the NUL are given; the kernel
        leaves the rest of the user buffer as it was (except in rotation, where the whole buffer is
        rewritten and this returns len_total bytes)."""
        if not self.level:
            return None, 0, 0
        text = self.text().encode("latin1")
        true_size = self.len_max
        if not self.has_buf:
            return None, true_size, 0
        total = self.len_total
        if self.mode == "head":
            # bpf_verifier_vlog of 6.1: writes stop at len_total - 1; a full log is ENOSPC whatever the verdict
            data = text[:total - 1] + b"\0"
            return data, true_size, errno.ENOSPC if len(text) >= total - 1 else 0
        if self.level & BPF_LOG_FIXED:
            data = text[:total - 1] + b"\0"
        else:
            if len(text) + 1 <= total:
                data = text + b"\0"
            else:
                data = text[len(text) - (total - 1):] + b"\0"
        err = errno.ENOSPC if self.len_max > total else 0
        return data, true_size, err
