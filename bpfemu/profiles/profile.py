"""A kernel version's profile: the facts of bpf(2) that differ between kernel versions, in one object.

A :class:`Profile` is what ``Kernel(version="6.1").profile`` is. Each version declares its own in a module
of this package (``v6_18.py``, ``v6_12.py``, ``v6_1.py``), and the code that governs a fact reads it from
there: the syscall front reads the attr size and the last field of each command, MAP_CREATE the map types
and the privilege rules, OBJ_GET_INFO_BY_FD the size of ``struct bpf_map_info``, each map type the sizes of
its kernel structs for its memlock formula, and so on. Nothing else in the emulator asks for a version.

A profile is declared as the one of the next newer version with what changed (:meth:`Profile.older`), so a
version's module reads as the list of what that version does differently, and :attr:`Profile.changes` keeps
that list (``docs/kernel-versions.md`` is generated from it and from the answers the versions give).

This module imports only the uapi: every layer may read a profile.
"""
from .. import uapi as U

# What each fact is, for the generated documentation: name -> (kernel source, meaning).
FACTS = {
    "commands": ("include/uapi/linux/bpf.h: enum bpf_cmd",
                 "the commands the kernel knows (any other number is EINVAL)"),
    "map_types": ("include/linux/bpf_types.h",
                  "the map types MAP_CREATE knows (any other type is EINVAL)"),
    "attr_size": ("sizeof(union bpf_attr)",
                  "how much of attr __sys_bpf copies in; nonzero bytes past it are E2BIG"),
    "last_fields": ("kernel/bpf/syscall.c: BPF_<CMD>_LAST_FIELD",
                    "the last attr field each command reads (CHECK_ATTR: nonzero bytes after it are EINVAL)"),
    "map_info_size": ("sizeof(struct bpf_map_info)",
                      "the bytes OBJ_GET_INFO_BY_FD fills for a map; a longer buffer with a nonzero tail is E2BIG"),
    "map_info_reads_user": ("bpf_map_get_info_by_fd",
                            "the caller's bpf_map_info is copied in first (fields the map has no value for keep "
                            "the caller's bytes; the content hash is requested through it); else zeroed"),
    "memlock": ("kernel/bpf/syscall.c: bpf_map_show_fdinfo",
                "what the fdinfo memlock line shows: each type's map_mem_usage, or bpf_map_memory_footprint "
                "(max_entries * round_up(key + value size, 8), page-aligned)"),
    "sizeof": ("the map types' kernel structs (x86_64)",
               "the struct sizes the map types' memory formulas count (fdinfo memlock, the memory cgroup, the "
               "LPM trie's largest value)"),
    "kernel_offsets": ("the kernel structs the verifier's rewrites address (x86_64; read from each version's BTF)",
                       "byte offsets of the kernel struct fields an xlated program reads: struct sk_buff's "
                       "(len, mark, data, __cloned_offset, ...), bpf_array's value area, htab_elem's key, "
                       "xdp_buff's; the program's tag and info hash them (a field a version lacks is absent: "
                       "6.1 has a vlan_present bit, no vlan_all)"),
    "prog_tag": ("kernel/bpf/core.c: bpf_prog_calc_tag",
                 "the hash whose first 8 bytes are a program's tag (the instructions with map fds zeroed): sha256 "
                 "(6.18) or sha1"),
    "log_liveness_marks": ("kernel/bpf/log.c: print_verifier_state (print_liveness)",
                           "the level-2 log marks each register and spilled slot of a state with its liveness "
                           "(R0_w=1: written, _r read, _D done); 6.18 computes liveness before the walk and "
                           "prints none"),
    "csum_diff": ("net/core/filter.c: bpf_csum_diff",
                  "what bpf_csum_diff returns: folded (6.13: a 16-bit fold of to's sum less from's, any "
                  "sizes) or csum_partial (the raw 32-bit csum_partial of the complemented 'from' words and "
                  "the 'to' words from the seed; sizes not a multiple of 4, or more than 512 bytes in all, "
                  "are -EINVAL)"),
    "unpriv_check_at_entry": ("kernel/bpf/syscall.c: __sys_bpf",
                              "with kernel.unprivileged_bpf_disabled set, MAP_CREATE and PROG_LOAD without CAP_BPF "
                              "are EPERM before the attr is read; else the privilege is checked in map_create, "
                              "after the attributes"),
    "net_admin": ("kernel/bpf/syscall.c: map_create",
                  "what the CAP_NET_ADMIN map types (DEVMAP, SOCKMAP, XSKMAP...) ask: CAP_NET_ADMIN, or "
                  "bpf_net_capable (CAP_NET_ADMIN or CAP_SYS_ADMIN)"),
    "freeze_checks": ("kernel/bpf/syscall.c: map_freeze",
                      "MAP_FREEZE's checks after the map type's, in order: write_perm (EPERM without a writable "
                      "fd; a frozen map has none), write_active (EBUSY while writably mapped), frozen (EBUSY), "
                      "bpf_capable (EPERM without CAP_BPF)"),
    "path_fd": ("kernel/bpf/syscall.c: bpf_obj_pin, bpf_obj_get",
                "OBJ_PIN and OBJ_GET take BPF_F_PATH_FD and path_fd (paths relative to a directory fd)"),
    "lookup_and_delete_types": ("kernel/bpf/syscall.c: map_lookup_and_delete_elem",
                                "the map types LOOKUP_AND_DELETE_ELEM serves (any other is ENOTSUPP)"),
    "btf_tag_kflag": ("kernel/bpf/btf.c: btf_decl_tag_check_meta, btf_ref_type_check_meta",
                      "BTF_KIND_DECL_TAG and BTF_KIND_TYPE_TAG may set kind_flag (attribute tags, 6.14); else "
                      "\"Invalid btf_info kind_flag\", EINVAL"),
    "map_value_fields": ("kernel/bpf/syscall.c: map_check_btf",
                         "the special fields btf_parse_fields looks for in a map value (any other struct or tag is "
                         "plain data)"),
    "verifier_log": ("kernel/bpf/log.c: bpf_verifier_vlog (BTF_LOAD's log)",
                     "rotating (6.4: keeps the tail unless BPF_LOG_FIXED, log_true_size, ENOSPC whenever it did not "
                     "fit) or head (keeps the head, needs a level, a buffer and 128 bytes or more, no BPF_LOG_FIXED; "
                     "ENOSPC when it filled up and the load succeeded otherwise)"),
    "btf_section_names": ("kernel/bpf/btf.c: btf_name_valid_section",
                          "what a DATASEC name may be: printable (any printable characters) or identifier (letters, "
                          "digits, '_' and '.', not a digit first)"),
    "btf_struct_metas": ("kernel/bpf/btf.c: btf_parse_struct_metas",
                         "BTF_LOAD checks the special fields of each struct (two bpf_spin_locks, a list head "
                         "without a lock, a kptr to a kernel type without a destructor: EINVAL) (6.2)"),
    "instructions": ("kernel/bpf/core.c: bpf_opcode_in_insntable; kernel/bpf/verifier.c: check_alu_op, check_atomic",
                     "the instructions the verifier knows beyond the classic set: sdiv_smod, movsx, ldsx (sign-extending "
                     "loads), bswap (cpu=v4, 6.6), may_goto (6.9), load_acquire, store_release (6.15); an unknown one "
                     "is EINVAL at load: 'unknown opcode', or the reserved-fields line of its class"),
    "st_to_ctx": ("kernel/bpf/verifier.c: do_check (BPF_ST)",
                  "BPF_ST (a store of an immediate) may write to the program's context (6.3); else \"BPF_ST stores "
                  "into R<n> ctx is not allowed\", EACCES at load"),
    "test_run_types": ("net/bpf/test_run.c, the prog_ops of each type",
                       "the program types BPF_PROG_TEST_RUN runs (any other: ENOTSUPP, 524)"),
    "xdp_meta_max": ("include/net/xdp.h: xdp_metalen_invalid",
                     "the most bytes of XDP metadata (a test run's xdp_md.data; more is EINVAL)"),
    "map_field_rules": ("kernel/bpf/syscall.c: map_check_btf, map_freeze",
                        "record (6.2): every special field needs CAP_BPF, makes BPF_F_RDONLY_PROG/WRONLY_PROG "
                        "EACCES and MAP_FREEZE ENOTSUPP, each kind lives in its own map types (else EOPNOTSUPP); "
                        "or per kind (6.1): each kind's flags that "
                        "are EACCES, map types and errno for any other type, CAP_BPF (EPERM), whether it makes "
                        "MAP_FREEZE ENOTSUPP"),
    "kptr_local": ("kernel/bpf/btf.c: btf_parse_kptr",
                   "a kptr may point to a struct of the map's own BTF (local kptrs, 6.2); else only to a kernel "
                   "type, and a kptr to any other leaves the value without special fields"),
    "array_const_key_nonnull": ("kernel/bpf/verifier.c: check_helper_call (can_elide_value_nullness)",
                                "bpf_map_lookup_elem of an array with a constant key below max_entries returns a "
                                "value pointer that is never NULL (6.13); else the program must check it "
                                "(\"R0 invalid mem access 'map_value_or_null'\", EACCES)"),
    "prog_types": ("include/linux/bpf_types.h",
                   "the program types PROG_LOAD knows (any other type is EINVAL)"),
    "attach_types": ("include/uapi/linux/bpf.h: enum bpf_attach_type",
                     "how many attach types the kernel knows (__MAX_BPF_ATTACH_TYPE): a newer one is no program "
                     "type's expected_attach_type (EINVAL where bpf_prog_load_check_attach lists them)"),
    "prog_flags": ("kernel/bpf/syscall.c: bpf_prog_load",
                   "the prog_flags PROG_LOAD knows (any other bit is EINVAL first)"),
    "license_first": ("kernel/bpf/syscall.c: bpf_prog_load",
                      "the license is copied in right after the prog_flags check, so an unreadable one is EFAULT "
                      "before insn_cnt is looked at (6.1); else after the instructions"),
    "ksym_funcs": ("kernel/bpf/verifier.c: check_pseudo_btf_id",
                   "an ld_imm64 of BPF_PSEUDO_BTF_ID may name a kernel function (read-only memory of no size); "
                   "else only a variable (KIND_VAR), with 6.1's log line"),
    "tnum_strn": ("kernel/bpf/tnum.c, kernel/bpf/log.c: tnum_strn",
                  "how the verifier's error lines print a var_off: a known one as its value (\"constant\", 6.6) "
                  "or always as (value; mask) (\"pair\")"),
    "sleepable_log": ("kernel/bpf/verifier.c: check_attach_btf_id",
                      "the log line for BPF_F_SLEEPABLE on a program type that cannot sleep"),
    "trampolines": ("kernel/bpf/trampoline.c; the reference host's 6.18.44-fc (docs/kernel-notes.md)",
                    "whether the kernel loads the trampoline-based programs (TRACING fentry/fexit/fmod_ret, LSM, "
                    "EXT): the reference 6.18 host refuses every one with EPERM before any other check (empty log); "
                    "Debian's kernels check them (no attach target: EINVAL \"Tracing programs must provide "
                    "btf_id\")"),
    "lru_target_free": ("kernel/bpf/bpf_lru_list.c: bpf_lru_list_init, bpf_lru_list_pop_free_to_local",
                        "how many nodes a CPU of a common LRU takes from the global free list at once: scaled "
                        "(max_entries / possible CPUs / 2, between 1 and LOCAL_FREE_TARGET = 128) or fixed "
                        "(LOCAL_FREE_TARGET whatever the map's size, so a small full map evicts all but its newest "
                        "keys)"),
    "fd_htab_update_in_place": ("kernel/bpf/hashtab.c: bpf_fd_htab_map_update_elem",
                                "updating a present key of a HASH_OF_MAPS swaps the inner map in place (else a new "
                                "element replaces it at the head of its bucket, which moves the key in a walk, "
                                "and a preallocated table keeps a spare element per CPU for it)"),
}


# The instructions a verifier may or may not know (the ``instructions`` fact), with the version that added each.
INSTRUCTIONS = {"sdiv_smod": "6.6", "movsx": "6.6", "ldsx": "6.6", "bswap": "6.6", "may_goto": "6.9",
                "load_acquire": "6.15", "store_release": "6.15"}


class FieldRule:
    """One kind of special field in a map value as a kernel without btf_record (6.1) checks it: ``fields``
    (btf field type names: "BPF_SPIN_LOCK"...), ``eacces_flags`` (map flags that make MAP_CREATE EACCES),
    ``map_types`` (those that may hold it; any other: ``errno``), ``needs_bpf`` (EPERM without CAP_BPF),
    ``blocks_freeze`` (MAP_FREEZE is ENOTSUPP)."""

    __slots__ = ("fields", "eacces_flags", "map_types", "errno", "needs_bpf", "blocks_freeze")

    def __init__(self, fields, eacces_flags, map_types, errno, needs_bpf, blocks_freeze):
        self.fields = tuple(fields)
        self.eacces_flags = eacces_flags
        self.map_types = frozenset(map_types)
        self.errno = errno
        self.needs_bpf = needs_bpf
        self.blocks_freeze = blocks_freeze

    def __repr__(self):
        return "%s: %s" % ("/".join(self.fields), ", ".join(U.MAP_TYPE_NAMES.get(t, str(t)) for t in sorted(self.map_types)))


class Profile:
    """The facts of one kernel version (see :data:`FACTS` for each one's meaning and kernel source).

    ``version`` is "6.1", "6.12" or "6.18"; ``changes`` the facts this version declares differently from
    the next newer one (``{}`` for the newest); ``notes`` what the profile does not model, in words."""

    def __init__(self, version, *, commands, map_types, attr_size, last_fields, map_info_size,
                 map_info_reads_user, memlock, sizeof, kernel_offsets, csum_diff, prog_tag,
                 log_liveness_marks, unpriv_check_at_entry, net_admin, freeze_checks,
                 path_fd, lookup_and_delete_types, fd_htab_update_in_place, lru_target_free, trampolines,
                 prog_types, attach_types, prog_flags, license_first, sleepable_log, ksym_funcs, tnum_strn,
                 btf_tag_kflag, map_value_fields,
                 verifier_log, btf_section_names, btf_struct_metas, instructions, st_to_ctx, test_run_types,
                 xdp_meta_max, map_field_rules, kptr_local,
                 array_const_key_nonnull, notes=(), changes=None,
                 newer=None):
        self.version = version
        self.commands = frozenset(commands)
        self.map_types = frozenset(map_types)
        self.attr_size = attr_size
        self.last_fields = dict(last_fields)  # cmd -> field, where it differs from syscall/table.py's
        self.map_info_size = map_info_size
        self.map_info_reads_user = map_info_reads_user
        self.memlock = memlock
        self.sizeof = dict(sizeof)
        self.kernel_offsets = dict(kernel_offsets)  # (struct, field) -> byte offset
        if csum_diff not in ("folded", "csum_partial"):
            raise ValueError("csum_diff is folded or csum_partial, not %r" % (csum_diff,))
        self.csum_diff = csum_diff
        if prog_tag not in ("sha256", "sha1"):
            raise ValueError("prog_tag is sha256 or sha1, not %r" % (prog_tag,))
        self.prog_tag = prog_tag
        self.log_liveness_marks = bool(log_liveness_marks)
        self.unpriv_check_at_entry = unpriv_check_at_entry
        self.net_admin = net_admin
        self.freeze_checks = tuple(freeze_checks)
        self.path_fd = path_fd
        self.lookup_and_delete_types = frozenset(lookup_and_delete_types)
        self.fd_htab_update_in_place = fd_htab_update_in_place
        if lru_target_free not in ("scaled", "fixed"):
            raise ValueError("lru_target_free is scaled or fixed, not %r" % (lru_target_free,))
        self.lru_target_free = lru_target_free
        self.trampolines = bool(trampolines)
        self.prog_types = frozenset(prog_types)
        self.attach_types = attach_types
        self.prog_flags = prog_flags
        self.license_first = license_first
        self.sleepable_log = sleepable_log
        self.ksym_funcs = ksym_funcs
        if tnum_strn not in ("constant", "pair"):
            raise ValueError("tnum_strn is constant or pair, not %r" % (tnum_strn,))
        self.tnum_strn = tnum_strn
        self.btf_tag_kflag = btf_tag_kflag
        self.map_value_fields = tuple(map_value_fields)
        self.verifier_log = verifier_log
        self.btf_section_names = btf_section_names
        self.btf_struct_metas = btf_struct_metas
        self.instructions = frozenset(instructions)
        self.st_to_ctx = st_to_ctx
        self.test_run_types = frozenset(test_run_types)
        self.xdp_meta_max = xdp_meta_max
        self.kptr_local = kptr_local
        self.array_const_key_nonnull = array_const_key_nonnull
        # "record", or per kind: ((field names), EACCES flags, map types, errno for others, CAP_BPF, freeze)
        self.map_field_rules = map_field_rules if map_field_rules == "record" else tuple(
            FieldRule(*r) for r in map_field_rules)
        unknown = self.instructions - set(INSTRUCTIONS)
        if unknown:
            raise ValueError("unknown instructions %s" % sorted(unknown))
        if verifier_log not in ("rotating", "head"):
            raise ValueError("verifier_log is rotating or head, not %r" % (verifier_log,))
        self.notes = tuple(notes)
        self.changes = dict(changes or {})
        self.newer = newer
        if memlock not in ("map_mem_usage", "bpf_map_memory_footprint"):
            raise ValueError("memlock is map_mem_usage or bpf_map_memory_footprint, not %r" % (memlock,))
        if net_admin not in ("CAP_NET_ADMIN", "bpf_net_capable"):
            raise ValueError("net_admin is CAP_NET_ADMIN or bpf_net_capable, not %r" % (net_admin,))
        unknown = set(freeze_checks) - {"write_perm", "write_active", "frozen", "bpf_capable"}
        if unknown:
            raise ValueError("unknown freeze checks %s" % sorted(unknown))
        self._attr_end = {}

    def older(self, version, notes=(), **changes):
        """The profile of an older ``version``: this one with ``changes`` (fact name -> that version's value;
        ``last_fields``, ``sizeof`` and ``kernel_offsets`` are merged into this one's; an offset of None drops
        the field)."""
        unknown = set(changes) - set(FACTS)
        if unknown:
            raise TypeError("not a profile fact: %s" % ", ".join(sorted(unknown)))
        facts = {name: getattr(self, name) for name in FACTS}
        for name, value in changes.items():
            if name in ("last_fields", "sizeof", "kernel_offsets"):
                value = {k: v for k, v in {**facts[name], **value}.items() if v is not None}
            facts[name] = value
        return Profile(version, notes=notes, changes=changes, newer=self, **facts)

    # -- questions the code asks ---------------------------------------------------------------
    def knows_command(self, cmd):
        return cmd in self.commands

    def knows_insn(self, name):
        """Whether this version's verifier knows the instruction ``name`` (a key of :data:`INSTRUCTIONS`)."""
        if name not in INSTRUCTIONS:
            raise KeyError(name)
        return name in self.instructions

    def knows_prog_type(self, prog_type):
        return prog_type in self.prog_types

    def knows_attach_type(self, attach_type):
        return 0 <= attach_type < self.attach_types

    def knows_map_type(self, map_type):
        return map_type in self.map_types

    def last_field(self, entry):
        """The last attr field of a command (a :class:`bpfemu.syscall.table.Command`) in this version."""
        return self.last_fields.get(entry.cmd, entry.last_field)

    def attr_end(self, entry):
        """CHECK_ATTR's bound for a command: the end of its last field, capped by this version's attr size."""
        end = self._attr_end.get(entry.cmd)
        if end is None:
            end = self._attr_end[entry.cmd] = min(U.offsetofend(self.last_field(entry)), self.attr_size)
        return end

    def size(self, struct):
        """sizeof(struct ``struct``) in this version (a KeyError names a struct no profile declares)."""
        return self.sizeof[struct]

    def offset(self, struct, field):
        """offsetof(struct ``struct``, ``field``) in this version's kernel, or None when no profile declares it
        (or the version has no such field)."""
        return self.kernel_offsets.get((struct, field))

    def __repr__(self):
        return "<bpfemu kernel profile %s>" % self.version
