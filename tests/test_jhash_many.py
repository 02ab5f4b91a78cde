"""jhash_many and jhash_array (all the keys of a batch hashed together, in Python ints or NumPy arrays) give
jhash's value for every key."""
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from bpfemu.jhash import jhash, jhash_array, jhash_many
from bpfemu.testing.fuzz import examples


@settings(max_examples=examples(200), deadline=None)
@given(key_len=st.integers(0, 90), count=st.integers(0, 40), seed=st.integers(0, 2**32 - 1),
       salt=st.integers(0, 2**32))
def test_jhash_many_is_jhash_of_each_key(key_len, count, seed, salt):
    rnd = random.Random(salt)
    data = bytes(rnd.getrandbits(8) for _ in range(key_len * count))
    want = [jhash(data[i * key_len:(i + 1) * key_len], seed) for i in range(count)]
    assert jhash_many(data, key_len, count, seed) == want
    assert jhash_many(bytearray(data) + b"tail", key_len, count, seed) == want  # only count keys are read


@settings(max_examples=examples(200), deadline=None)
@given(key_len=st.integers(0, 90), count=st.integers(0, 40), seed=st.integers(0, 2**32 - 1),
       salt=st.integers(0, 2**32))
def test_jhash_array_is_jhash_of_each_key(key_len, count, seed, salt):
    """jhash_array (NumPy uint32 arithmetic over all keys) gives jhash's value for every key."""
    rnd = random.Random(salt)
    data = bytes(rnd.getrandbits(8) for _ in range(key_len * count))
    want = [jhash(data[i * key_len:(i + 1) * key_len], seed) for i in range(count)]
    got = jhash_array(data, key_len, count, seed)
    assert str(got.dtype) == "uint32" and got.tolist() == want
    assert jhash_array(bytearray(data) + b"tail", key_len, count, seed).tolist() == want  # only count keys
