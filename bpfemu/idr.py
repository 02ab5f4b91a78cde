"""Cyclic id allocators, one per object kind, as the kernel's map/prog/link/btf idrs.

Ids start at 1 and go up; a freed id is not handed out again until the
allocator wraps past INT_MAX and comes round to it.
"""
from sortedcontainers import SortedDict

INT_MAX = 2**31 - 1


class IDR:
    def __init__(self, start=1, end=INT_MAX):
        self.start, self.end = start, end
        self.next = start
        self.objs = SortedDict()

    def alloc_cyclic(self, obj):
        """Lowest free id at or after the cursor, wrapping round once."""
        i = self.next
        for _ in range(2):
            while i <= self.end and i in self.objs:
                i += 1
            if i <= self.end:
                self.objs[i] = obj
                self.next = i + 1 if i < self.end else self.start
                return i
            i = self.start
        raise MemoryError("id space exhausted")

    def remove(self, i):
        self.objs.pop(i, None)

    def find(self, i):
        return self.objs.get(i)

    def get_next(self, i):
        """The smallest id strictly greater than i, or None."""
        pos = self.objs.bisect_right(i)
        if pos == len(self.objs):
            return None
        return self.objs.peekitem(pos)[0]

    def __len__(self):
        return len(self.objs)

    def __iter__(self):
        return iter(self.objs.values())
