"""A chunk's dedupe keys, made at once for speed, are each number's own key: the fast path never merges two
numbers the slow one keeps apart, nor the reverse."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from engagelab_sms_async import _numbers as numbers

# Digits, the separators numbers are written with, a plus, and what must send a chunk down the slow path:
# digits of other scripts ("٣", "²"), a letter, a newline inside a number.
CHARACTERS = st.sampled_from(list("0123456789+ -.()\u00a0\u0663\u00b2x\n"))
PHONES = st.lists(st.text(CHARACTERS, min_size=1, max_size=14), min_size=1, max_size=20)


@settings(max_examples=500, deadline=None)
@given(PHONES, st.booleans())
def test_the_keys_of_a_chunk_are_the_keys_of_its_numbers(phones: list[str], compact: bool) -> None:
    assert numbers.keys(phones, compact=compact) == [numbers._key(phone, compact=compact) for phone in phones]
