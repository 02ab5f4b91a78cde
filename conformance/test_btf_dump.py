"""The typed map API on both backends: ``Map.create(btf=...)``, ``m.btf``, ``m.typed_items()`` and
``m.dump()``, whose text is ``bpftool map dump``'s.

The expected dumps were printed by bpftool v7.1 (Debian's) for these very maps and are kept in
conformance/corpus/bpftool_dump.json (``python -m conformance.test_btf_dump record`` writes them again
from the live bpftool); on the host, when bpftool is installed, each test also compares ``m.dump()``
with what bpftool prints for the same map right now. The value type holds every kind bpftool's dumper
prints in its own way: signed and unsigned ints, a typedef, a char array that is a string and one
that is not, a signed enum (a name, or the number), an enum64, a bool, a char, a pointer (NULL or not),
bitfields (hex), a union, a byte array, a 128-bit int.
"""
import json
import os
import shutil
import struct
import subprocess
import sys

import pytest

from bpfemu import Map, uapi as u
from bpfemu.api.errors import BpfError
from bpfemu.btf import Builder
from bpfemu.testing.support import possible_cpus

RECORD = os.path.join(os.path.dirname(__file__), "corpus", "bpftool_dump.json")
NCPUS = possible_cpus()  # the host's, which the emulated kernels take too (2 off Linux)


def blob():
    b = Builder().int("int", 4, signed=True).int("unsigned int", 4).int("long long", 8, signed=True)
    b.int("char", 1, char=True).int("_Bool", 1, bool=True).int("unsigned __int128", 16).int("unsigned char", 1)
    b.array("char", 6, index="int").array("unsigned char", 3, index="int")
    b.enum("color", [("RED", 0), ("GREEN", 1), ("NEG", -5)], signed=True).enum64("big", [("HUGE", 1 << 40)])
    b.ptr("int").struct("bits", [("x", "int", 0, 3), ("y", "int", 3, 5), ("z", "int", 8, 24)], size=4)
    b.union("either", [("i", "int"), ("f", "unsigned int")]).typedef("u32", "unsigned int")
    b.struct("value", [("cnt", "int"), ("t", "u32"), ("data", "long long"), ("name", 8), ("c", "color"),
                       ("flag", "_Bool"), ("ch", "char"), ("p", 12), ("in", "bits"), ("un", "either"),
                       ("bytes", 9), ("e64", "big"), ("wide", "unsigned __int128")])
    return b.blob()


def value(k):
    v = bytearray(80)
    struct.pack_into("<iIq6s", v, 0, -7 * k, 7, -3, b"hi" if k == 1 else b"\x01\x02x\0\0\0")
    struct.pack_into("<i?c", v, 24, k, True, b"A" if k == 1 else b"\x05")
    struct.pack_into("<Q", v, 32, 0xdeadbeef if k == 1 else 0)
    struct.pack_into("<I", v, 40, 0b10110101 | (1000 << 8))
    struct.pack_into("<i3s", v, 44, -1, b"ab\0")
    struct.pack_into("<Q", v, 56, 1 << 40 if k == 1 else 12345)
    struct.pack_into("<QQ", v, 64, 5, k - 1)
    return bytes(v)


def btf_map(proc, kind):
    flags = u.BPF_F_ZERO_SEED if kind.endswith("hash") else 0  # the kernel's bucket order
    m = Map.create(proc, kind, max_entries=3, btf=blob(), btf_key_type="int", btf_value_type="value", flags=flags)
    for k in (1, 2):
        m[k] = [value(k)] * m.ncpus if m.percpu else value(k)
    return m


def plain_maps(proc):
    out = {}
    m = Map.create(proc, "hash", key="I", value="Q", max_entries=3, flags=u.BPF_F_ZERO_SEED)
    m[1], m[2] = 0x1122, 0x3344
    out["hash I->Q"] = m
    m = Map.create(proc, "array", key_size=4, value_size=20, max_entries=2)
    m[b"\1\0\0\0"] = bytes(range(20))
    out["array 4->20"] = m
    m = Map.create(proc, "hash", key_size=20, value_size=4, max_entries=2, flags=u.BPF_F_ZERO_SEED)
    m[bytes(range(20))] = b"\7\7\7\7"
    out["hash 20->4"] = m
    m = Map.create(proc, "percpu_hash", key="I", value="I", max_entries=2, flags=u.BPF_F_ZERO_SEED)
    m[1] = 5
    out["percpu_hash I->I"] = m
    out["empty hash"] = Map.create(proc, "hash", key="I", value="I", max_entries=2)
    return out


def record():
    try:
        with open(RECORD) as f:
            return json.load(f)
    except OSError:
        return {}


def bpftool_dump(m):
    """``bpftool map dump id N`` of a host map, or None without bpftool."""
    if shutil.which("bpftool") is None:
        return None
    return subprocess.run(["bpftool", "map", "dump", "id", str(m.id)], capture_output=True, text=True,
                          check=True).stdout


def _expected(name):
    want = record().get("ncpus_%d" % NCPUS, {}).get(name)
    if want is None:
        pytest.skip("no bpftool dump recorded for %d CPUs" % NCPUS)
    return want


@pytest.mark.parametrize("kind", ["hash", "array", "percpu_array", "percpu_hash"])
def test_dump_with_btf(backend, proc, kind):
    m = btf_map(proc, kind)
    text = m.dump()
    if backend.name == "host" and backend.vm is None and bpftool_dump(m) is not None:  # bpftool of this machine
        assert text == bpftool_dump(m)
    assert text == _expected(kind)


@pytest.mark.parametrize("name", ["hash I->Q", "array 4->20", "hash 20->4", "percpu_hash I->I", "empty hash"])
def test_dump_without_btf(backend, proc, name):
    m = plain_maps(proc)[name]
    text = m.dump()
    if backend.name == "host" and backend.vm is None and bpftool_dump(m) is not None:  # bpftool of this machine
        assert text == bpftool_dump(m)
    assert text == _expected(name)


def test_empty_map_with_btf(proc):
    m = Map.create(proc, "hash", max_entries=2, btf=blob(), btf_key_type="int", btf_value_type="value")
    assert m.dump() == "[]\n"


def test_btf_and_typed_items(proc):
    m = btf_map(proc, "array")
    assert (m.key_size, m.value_size) == (4, 80)  # the sizes of the types
    assert m.btf.name(m.btf_value_type_id) == "value" and m.btf.name(m.btf_key_type_id) == "int"
    items = dict(m.typed_items())
    assert set(items) == {0, 1, 2}
    v = items[1]
    assert (v["cnt"], v["t"], v["data"], v["name"], v["c"], v["flag"], v["ch"]) == (-7, 7, -3, "hi", "GREEN", True,
                                                                                    "A")
    assert v["p"] == 0xdeadbeef and items[2]["p"] is None
    assert v["in"] == {"x": 0b101, "y": 0b10110, "z": 1000}
    assert v["un"] == {"i": -1, "f": 0xFFFFFFFF} and v["bytes"] == [0x61, 0x62, 0]
    assert (v["e64"], items[2]["e64"], v["wide"], items[2]["wide"]) == ("HUGE", 12345, 5, 5 | 1 << 64)
    assert items[2]["name"] == ["\x01", "\x02", "x", "\0", "\0", "\0"] and items[2]["c"] == 2  # chars: str


def test_map_without_btf_has_none(proc):
    m = Map.create(proc, "hash", key="I", value="I", max_entries=2)
    assert m.btf is None and m.btf_id == 0


def test_a_bad_blob_says_why(proc):
    bad = Builder().int("int", 4, signed=True).ptr(5).blob()
    with pytest.raises(BpfError) as e:
        Map.create(proc, "hash", key_size=4, value_size=4, max_entries=2, btf=bad, btf_key_type=1,
                   btf_value_type=1)
    assert e.value.errno == 22 and "Invalid type_id" in str(e.value)


def _record_now():
    """Write the dumps bpftool prints on this machine into the record (run as root on Linux)."""
    from bpfemu import Host
    h = Host()
    data = record()
    got = {kind: bpftool_dump(btf_map(h, kind)) for kind in ("hash", "array", "percpu_array", "percpu_hash")}
    got.update({name: bpftool_dump(m) for name, m in plain_maps(h).items()})
    data["ncpus_%d" % NCPUS] = got
    data["bpftool"] = subprocess.run(["bpftool", "version"], capture_output=True, text=True).stdout.split("\n")[0]
    with open(RECORD, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    if sys.argv[1:] == ["record"]:
        _record_now()
        print("recorded", RECORD)
