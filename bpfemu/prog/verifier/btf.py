"""What the verifier asks of BTF (the verifier-facing parts of kernel/bpf/btf.c).

The BTF objects themselves (the program's BTF from ``prog_btf_fd``, the kernel's own) are read through the
interface of ``bpfemu.btf.Btf``: ``type_by_id(id)`` -> type with ``kind``, ``vlen``, ``kflag``, ``size``/``type``,
``members`` [(name_off, type, offset)], ``params`` [(name_off, type)], ``array`` (elem, index, nelems),
``int_data``, ``linkage``, ``component_idx``; ``name(type or id)``, ``str_by_offset(off)``,
``find_by_name_kind(name, kind)``, ``skip_modifiers(id)`` -> (type, id), ``resolve_size(id)``, ``ids()``.
"""
(BTF_KIND_UNKN, BTF_KIND_INT, BTF_KIND_PTR, BTF_KIND_ARRAY, BTF_KIND_STRUCT, BTF_KIND_UNION, BTF_KIND_ENUM,
 BTF_KIND_FWD, BTF_KIND_TYPEDEF, BTF_KIND_VOLATILE, BTF_KIND_CONST, BTF_KIND_RESTRICT, BTF_KIND_FUNC,
 BTF_KIND_FUNC_PROTO, BTF_KIND_VAR, BTF_KIND_DATASEC, BTF_KIND_FLOAT, BTF_KIND_DECL_TAG, BTF_KIND_TYPE_TAG,
 BTF_KIND_ENUM64) = range(20)
BTF_FUNC_STATIC, BTF_FUNC_GLOBAL, BTF_FUNC_EXTERN = 0, 1, 2
BTF_INT_SIGNED = 1
