"""The emulated machine's clocks and high-resolution timers (kernel/time/timekeeping.c, hrtimer.c, jiffies).

Time stands still unless the test moves it: :meth:`Clock.advance` (``kernel.clock.advance(ns)``) moves every
clock forward by ``ns`` nanoseconds and fires, in expiry order, the timers that fall due on the way (each at
its own expiry time, so a callback that reads the clock sees when it was due). Everything a program can ask
about time comes from here: ``bpf_ktime_get_ns`` (CLOCK_MONOTONIC), ``bpf_ktime_get_boot_ns``
(CLOCK_BOOTTIME: monotonic plus the time spent suspended, :meth:`Clock.suspend`), ``bpf_ktime_get_coarse_ns``
(the monotonic time of the last tick), ``bpf_ktime_get_tai_ns`` (CLOCK_TAI), ``bpf_jiffies64``, and the
``duration`` of a test run (0 unless something moved the clock during the run).

A fresh kernel has been up for :data:`BOOT_NS` (one second), its wall clock reads :data:`REALTIME_AT_BOOT`,
and TAI is 37 s ahead of UTC (the leap seconds since 1972), so values are plausible and deterministic.
"""
import heapq
import itertools

NSEC_PER_SEC = 1000000000
HZ = 1000                                  # CONFIG_HZ of the reference host
TICK_NSEC = NSEC_PER_SEC // HZ
INITIAL_JIFFIES = (-300 * HZ) & 0xFFFFFFFF  # jiffies start 5 minutes before the 32-bit wrap
BOOT_NS = NSEC_PER_SEC                     # CLOCK_MONOTONIC of a fresh kernel
REALTIME_AT_BOOT = 1735689600 * NSEC_PER_SEC  # 2025-01-01T00:00:00Z
TAI_OFFSET_NS = 37 * NSEC_PER_SEC


class Timer:
    """An hrtimer: ``fn()`` runs when the monotonic clock reaches ``expires`` (ns), once per start."""

    __slots__ = ("fn", "expires", "active", "_seq")

    def __init__(self, fn):
        self.fn = fn
        self.expires = 0
        self.active = False
        self._seq = 0


class Clock:
    """The clocks of one kernel and its timer queue. ``lock``: the kernel's lock, taken while timers fire
    (their callbacks are programs that touch maps)."""

    def __init__(self, lock):
        self.lock = lock
        self.mono = BOOT_NS
        self.suspended = 0
        self._queue = []   # (expires, seq, Timer)
        self._seq = itertools.count(1)

    # -- reading ------------------------------------------------------------------------------------
    def ktime_get_ns(self):
        """CLOCK_MONOTONIC in ns."""
        return self.mono

    def ktime_get_boot_ns(self):
        """CLOCK_BOOTTIME in ns: monotonic plus suspended time."""
        return self.mono + self.suspended

    def ktime_get_coarse_ns(self):
        """The monotonic time of the last tick."""
        return self.mono - self.mono % TICK_NSEC

    def ktime_get_real_ns(self):
        return REALTIME_AT_BOOT - BOOT_NS + self.mono + self.suspended

    def ktime_get_tai_ns(self):
        return self.ktime_get_real_ns() + TAI_OFFSET_NS

    def jiffies64(self):
        return INITIAL_JIFFIES + self.mono // TICK_NSEC

    # -- moving ------------------------------------------------------------------------------------
    def advance(self, ns):
        """Let ``ns`` nanoseconds pass (ns >= 0), firing the timers that fall due, each at its expiry time.
        A callback may start timers again; those fire too when they fall due within the same step."""
        if ns < 0:
            raise ValueError("time does not go backwards")
        with self.lock:
            target = self.mono + ns
            while self._queue and self._queue[0][0] <= target:
                expires, seq, t = heapq.heappop(self._queue)
                if not t.active or t._seq != seq:
                    continue  # cancelled or restarted since
                t.active = False
                self.mono = max(self.mono, expires)
                t.fn()
            self.mono = target

    def suspend(self, ns):
        """A suspend of ``ns`` nanoseconds: CLOCK_BOOTTIME and the wall clock move, CLOCK_MONOTONIC does not."""
        with self.lock:
            self.suspended += ns

    # -- timers ----------------------------------------------------------------------------------
    def start(self, timer, expires):
        """hrtimer_start: (re)arm ``timer`` for the monotonic time ``expires``."""
        timer._seq = next(self._seq)
        timer.expires = expires
        timer.active = True
        heapq.heappush(self._queue, (expires, timer._seq, timer))

    def cancel(self, timer):
        """hrtimer_cancel: True when the timer was pending."""
        was = timer.active
        timer.active = False
        return was

    def pending(self):
        """The armed timers, soonest first."""
        return sorted((t for _, seq, t in self._queue if t.active and t._seq == seq), key=lambda t: t.expires)
