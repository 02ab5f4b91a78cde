"""The LRU lists of LRU_HASH and LRU_PERCPU_HASH (the kernel's bpf_lru_list.c), written from its behaviour.

Which element an LRU map gives up, and when, is decided here, and users see it: an update of a full
map (or of a map that is not full yet: eviction works in batches) removes other keys, an update that
then fails may still have evicted, and from one CPU only part of the map can be filled. The model is
deterministic for a given sequence of calls and the CPU each runs on (``Task.cpu``, set with
``sched_setaffinity``).

Every element is a node on one list: **active** or **inactive** (per LRU list, newest at the head), or
a CPU's **pending** list (common LRU only: nodes taken by that CPU since it last came to the global
list). Free nodes have no identity a user can observe, so free lists are counts. A node carries a
reference bit, set when an update replaces a key (the new node) or updates a per-CPU value in place,
and by program lookups; syscall lookups and walks do not set it.

Common LRU (the default), one global list and a local free/pending list per possible CPU:

- taking a node (an update) takes one from the CPU's local free list. When that is empty the CPU goes
  to the global list: its pending nodes move onto the global active (ref bit set) or inactive list, the
  global lists rotate, and up to ``target_free`` nodes move from the global free list to the local one,
  ``target_free`` = clamp(max_entries / possible CPUs / 2, 1, 128) (6.1: always 128, the profile's
  ``lru_target_free``). If the global free list had fewer,
  the rest is *shrunk* from the inactive list's tail: elements without the ref bit are deleted from the
  map (those with it move to the active head), up to the number missing and at most 128 scanned; if
  none could be taken, the oldest element of the inactive (else the active) list is deleted regardless.
  So eviction comes in batches, and can happen before the map is full (max_entries 8, 2 CPUs: keys
  0..8 from one CPU leave 2..8).
- if still nothing, the CPU steals round robin, starting at its ``next_steal``: another CPU's local free
  node, else the oldest pending node without (then with) the ref bit.
- giving a node back (a delete, a replaced element, a failed update): a pending node returns to its
  CPU's local free list, any other to the global free list.

Rotation, before nodes leave the global free list: when the inactive list is shorter than the active
one, the active list is scanned from its tail (at most 128 nodes, stopping at the node that was first):
nodes with the ref bit go back to the active head, others to the inactive head, all with the bit
cleared. The inactive list is then scanned from a remembered position (``next_inactive_rotation``)
towards its head, at most 128 nodes: nodes with the ref bit move to the active head.

Per-CPU LRU (BPF_F_NO_COMMON_LRU): each possible CPU has its own lists and max_entries / CPUs nodes,
and an update takes a node from the current CPU's list only: rotate (4 nodes at most), and when its
free list is empty shrink 4 nodes back into it. A node freed on another CPU returns to the list it
belongs to. With 2 CPUs and max_entries 2, an update of a present key with BPF_EXIST from the CPU
holding it evicts that very key first (ENOENT, the map left empty).
"""

ACTIVE, INACTIVE, FREE, LOCAL_FREE, LOCAL_PENDING = "active", "inactive", "free", "local_free", "pending"
LOCAL_FREE_TARGET = 128  # the most nodes a CPU takes from the global free list at once
LOCAL_NR_SCANS = LOCAL_FREE_TARGET
PERCPU_FREE_TARGET = 4
PERCPU_NR_SCANS = PERCPU_FREE_TARGET


class Head:
    """A list head (the sentinel of a circular doubly linked list); nodes carry ``lru_prev``/``lru_next``."""

    __slots__ = ("lru_prev", "lru_next", "n")

    def __init__(self):
        self.lru_prev = self.lru_next = self
        self.n = 0

    def __len__(self):
        return self.n

    def first(self):
        return None if self.lru_next is self else self.lru_next

    def last(self):
        return None if self.lru_prev is self else self.lru_prev

    def add_head(self, node):
        nxt = self.lru_next
        node.lru_prev, node.lru_next = self, nxt
        nxt.lru_prev = node
        self.lru_next = node
        self.n += 1

    def nodes(self):
        """Head to tail."""
        x = self.lru_next
        while x is not self:
            yield x
            x = x.lru_next


def list_del(head, node):
    node.lru_prev.lru_next = node.lru_next
    node.lru_next.lru_prev = node.lru_prev
    node.lru_prev = node.lru_next = None
    head.n -= 1


class LruList:
    """struct bpf_lru_list: active and inactive lists, a free count, the inactive rotation position."""

    __slots__ = ("active", "inactive", "free", "next_inactive_rotation")

    def __init__(self, free=0):
        self.active, self.inactive = Head(), Head()
        self.free = free
        self.next_inactive_rotation = self.inactive

    def head(self, t):
        return self.active if t == ACTIVE else self.inactive


class LocalList:
    """struct bpf_lru_locallist: a CPU's free count and pending list, and where it steals next."""

    __slots__ = ("free", "pending", "next_steal")

    def __init__(self, cpu):
        self.free = 0
        self.pending = Head()
        self.next_steal = cpu


class Lru:
    """struct bpf_lru of one map: ``new_node(cpu)`` makes a node (an element object of the map) for a CPU,
    ``del_from_htab(node)`` removes a node's element from the map (True if it was there). ``target_free`` is
    the kernel version's rule (its profile's ``lru_target_free``): "scaled" or "fixed" (always 128)."""

    def __init__(self, nr_elems, ncpus, percpu, del_from_htab, target_free="scaled"):
        self.ncpus = ncpus
        self.percpu = percpu
        self.del_from_htab = del_from_htab
        if percpu:
            per = nr_elems // ncpus
            self.lists = [LruList(per) for _ in range(ncpus)]
            for i in range(nr_elems - per * ncpus):  # max_entries is a multiple of the CPUs: never
                self.lists[i].free += 1
            self.nr_scans = PERCPU_NR_SCANS
        else:
            self.list = LruList(nr_elems)
            self.local = [LocalList(cpu) for cpu in range(ncpus)]
            self.nr_scans = LOCAL_NR_SCANS
            if target_free == "fixed":
                self.target_free = LOCAL_FREE_TARGET
            else:
                self.target_free = min(max(nr_elems // ncpus // 2, 1), LOCAL_FREE_TARGET)

    # -- moving nodes within one LruList ----------------------------------------------------------------
    def _move_to_free(self, l, node):
        """A node leaves active/inactive for a free list (the caller counts it there)."""
        if node is l.next_inactive_rotation:
            l.next_inactive_rotation = node.lru_prev
        list_del(l.head(node.lru_type), node)
        node.lru_type = FREE

    def _move_in(self, l, node, t):
        """A pending node joins the global active or inactive list, its ref bit cleared."""
        node.lru_type, node.ref = t, 0
        l.head(t).add_head(node)

    def _move(self, l, node, t):
        """Between or within active and inactive (to the head), or out to the free list; ref cleared."""
        node.ref = 0
        if node is l.next_inactive_rotation:
            l.next_inactive_rotation = node.lru_prev
        list_del(l.head(node.lru_type), node)
        if t == FREE:
            node.lru_type = FREE
            l.free += 1
            return
        node.lru_type = t
        l.head(t).add_head(node)

    # -- rotation and shrinking -----------------------------------------------------------------------------
    def _rotate_active(self, l):
        first = l.active.first()
        node, i = l.active.last(), 0
        while node is not None and node is not l.active:
            prev = node.lru_prev
            self._move(l, node, ACTIVE if node.ref else INACTIVE)
            i += 1
            if i == self.nr_scans or node is first:
                break
            node = prev

    def _rotate_inactive(self, l):
        inactive = l.inactive
        if not len(inactive):
            return
        last = l.next_inactive_rotation.lru_next
        if last is inactive:
            last = last.lru_next
        cur, nxt, i = l.next_inactive_rotation, inactive, 0
        while i < self.nr_scans:
            if cur is inactive:
                cur = cur.lru_prev
                continue
            nxt = cur.lru_prev
            if cur.ref:
                self._move(l, cur, ACTIVE)
            if cur is last:
                break
            cur = nxt
            i += 1
        l.next_inactive_rotation = nxt

    def _rotate(self, l):
        if len(l.inactive) < len(l.active):
            self._rotate_active(l)
        self._rotate_inactive(l)

    def _shrink_inactive(self, l, want, give):
        done, i = 0, 0
        node = l.inactive.last()
        while node is not None and node is not l.inactive:
            prev = node.lru_prev
            if node.ref:
                self._move(l, node, ACTIVE)
            elif self.del_from_htab(node):
                self._move_to_free(l, node)
                give(1)
                done += 1
                if done == want:
                    break
            i += 1
            if i == self.nr_scans:
                break
            node = prev
        return done

    def _shrink(self, l, want, give):
        """Free up to ``want`` nodes into ``give``: unreferenced inactive ones, else one by force."""
        done = self._shrink_inactive(l, want, give)
        if done:
            return done
        victims = l.inactive if len(l.inactive) else l.active
        node = victims.last()
        while node is not None and node is not victims:
            prev = node.lru_prev
            if self.del_from_htab(node):
                self._move_to_free(l, node)
                give(1)
                return 1
            node = prev
        return 0

    # -- common LRU -----------------------------------------------------------------------------------
    def _flush_pending(self, loc):
        l = self.list
        node = loc.pending.last()
        while node is not None and node is not loc.pending:
            prev = node.lru_prev
            list_del(loc.pending, node)
            self._move_in(l, node, ACTIVE if node.ref else INACTIVE)
            node = prev

    def _pop_free_to_local(self, loc):
        l = self.list
        self._flush_pending(loc)
        self._rotate(l)
        n = min(l.free, self.target_free)
        l.free -= n
        loc.free += n
        if n < self.target_free:
            self._shrink(l, self.target_free - n, lambda k: setattr(loc, "free", loc.free + k))

    def _add_pending(self, loc, cpu, node):
        node.cpu, node.lru_type, node.ref = cpu, LOCAL_PENDING, 0
        loc.pending.add_head(node)

    def _pop_pending(self, loc):
        for force in (False, True):
            node = loc.pending.last()
            while node is not None and node is not loc.pending:
                prev = node.lru_prev
                if (force or not node.ref) and self.del_from_htab(node):
                    list_del(loc.pending, node)
                    return True
                node = prev
        return False

    def _common_pop_free(self, cpu, new_node):
        loc = self.local[cpu]
        if not loc.free:
            self._pop_free_to_local(loc)
        if loc.free:
            loc.free -= 1
            node = new_node()
            self._add_pending(loc, cpu, node)
            return node
        first = steal = loc.next_steal
        got = False
        while True:
            victim = self.local[steal]
            if victim.free:
                victim.free -= 1
                got = True
            else:
                got = self._pop_pending(victim)
            steal = (steal + 1) % self.ncpus
            if got or steal == first:
                break
        loc.next_steal = steal
        if not got:
            return None
        node = new_node()
        self._add_pending(loc, cpu, node)
        return node

    # -- per-CPU LRU ----------------------------------------------------------------------------------
    def _percpu_pop_free(self, cpu, new_node):
        l = self.lists[cpu]
        self._rotate(l)
        if not l.free:
            self._shrink(l, PERCPU_FREE_TARGET, lambda k: setattr(l, "free", l.free + k))
        if not l.free:
            return None
        l.free -= 1
        node = new_node()
        node.cpu, node.lru_type, node.ref = cpu, INACTIVE, 0
        l.inactive.add_head(node)
        return node

    # -- the interface (bpf_lru_pop_free / bpf_lru_push_free) ----------------------------------------------
    def pop_free(self, cpu, new_node):
        """A node for an element about to be added on CPU ``cpu`` (made by ``new_node()``), or None
        (the map answers ENOMEM). May delete other elements of the map through del_from_htab."""
        if self.percpu:
            return self._percpu_pop_free(cpu, new_node)
        return self._common_pop_free(cpu, new_node)

    def push_free(self, node):
        """An element's node is free again (its element left the map, or was never added)."""
        if self.percpu:
            self._move(self.lists[node.cpu], node, FREE)
        elif node.lru_type == LOCAL_PENDING:
            loc = self.local[node.cpu]
            list_del(loc.pending, node)
            node.lru_type, node.ref = LOCAL_FREE, 0
            loc.free += 1
        else:
            self._move(self.list, node, FREE)

    # -- for the invariant checker ----------------------------------------------------------------------------
    def nodes(self):
        """Every node on a list (active, inactive, pending), and the free count."""
        out, free = [], 0
        for l in (self.lists if self.percpu else [self.list]):
            out += list(l.active.nodes()) + list(l.inactive.nodes())
            free += l.free
        if not self.percpu:
            for loc in self.local:
                out += list(loc.pending.nodes())
                free += loc.free
        return out, free

    def self_check(self, elems, nr_elems):
        """Problems: each element on exactly one list, of its own type, and the free nodes making up the rest."""
        out = []
        nodes, free = self.nodes()
        if len(nodes) != len(set(map(id, nodes))):
            out.append("a node is on two LRU lists")
        if set(map(id, nodes)) != set(map(id, elems)):
            out.append("LRU lists and elements differ (%d on lists, %d elements)" % (len(nodes), len(elems)))
        if len(nodes) + free != nr_elems:
            out.append("%d nodes on lists + %d free != %d" % (len(nodes), free, nr_elems))
        for l in (self.lists if self.percpu else [self.list]):
            for t in (ACTIVE, INACTIVE):
                if any(n.lru_type != t for n in l.head(t).nodes()):
                    out.append("a node on the %s list has another type" % t)
            r = l.next_inactive_rotation
            if r is not l.inactive and getattr(r, "lru_type", None) != INACTIVE:
                out.append("next_inactive_rotation is not on the inactive list")
        return out
