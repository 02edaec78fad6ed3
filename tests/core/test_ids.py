import re
import threading
import time
import uuid

import pytest

from flowdeck.core.ids import (
    DeterministicIds,
    IdGenerator,
    Uuid7Generator,
    is_uuid,
    new_id,
)

CANONICAL_V7 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def _timestamp_ms(text: str) -> int:
    return uuid.UUID(text).int >> 80


def test_new_id_is_canonical_uuid7() -> None:
    text = new_id()
    assert CANONICAL_V7.fullmatch(text)
    parsed = uuid.UUID(text)
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert str(parsed) == text


def test_new_id_timestamp_is_now() -> None:
    before = time.time_ns() // 1_000_000
    text = new_id()
    after = time.time_ns() // 1_000_000
    assert before <= _timestamp_ms(text) <= after + 1


def test_new_ids_sort_in_creation_order() -> None:
    ids = [new_id() for _ in range(20_000)]  # many share a millisecond
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert len({_timestamp_ms(i) for i in ids}) < len(ids)


def test_same_millisecond_and_backwards_clock_still_increase() -> None:
    times = iter([1000, 1000, 1000, 999, 500, 1000, 1001, 1001])
    gen = Uuid7Generator(clock_ms=lambda: next(times))
    ids = [gen() for _ in range(8)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 8
    assert [_timestamp_ms(i) for i in ids] == [1000] * 6 + [1001] * 2
    assert all(CANONICAL_V7.fullmatch(i) for i in ids)


def test_counter_overflow_moves_timestamp_ahead() -> None:
    gen = Uuid7Generator(clock_ms=lambda: 1000)
    first = gen()
    gen._counter = (1 << 74) - 1  # as if 2**41 ids had been made this millisecond
    second = gen()
    assert second > first
    assert _timestamp_ms(second) == 1001
    assert CANONICAL_V7.fullmatch(second)


def test_timestamp_out_of_range_is_rejected() -> None:
    with pytest.raises(ValueError, match="UUIDv7"):
        Uuid7Generator(clock_ms=lambda: 1 << 48)()


def test_thread_safe_unique_and_ordered_per_thread() -> None:
    gen = Uuid7Generator()
    results: list[list[str]] = [[] for _ in range(8)]

    def work(out: list[str]) -> None:
        for _ in range(5_000):
            out.append(gen())

    threads = [threading.Thread(target=work, args=(r,)) for r in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [i for r in results for i in r]
    assert len(set(everything)) == len(everything)
    for r in results:
        assert r == sorted(r)


def test_new_id_is_fast() -> None:
    n = 20_000
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            new_id()
        best = min(best, (time.perf_counter() - start) / n)
    assert best < 10e-6  # target is < 3 µs; loose bound for loaded CI machines


def test_deterministic_ids_repeat_every_run() -> None:
    a, b = DeterministicIds(), DeterministicIds()
    seq_a = [a() for _ in range(5)]
    assert seq_a == [b() for _ in range(5)]
    assert seq_a[:3] == [
        "019b76da-a800-7000-8000-000000000001",
        "019b76da-a801-7000-8000-000000000002",
        "019b76da-a802-7000-8000-000000000003",
    ]
    assert seq_a == sorted(seq_a)
    for text in seq_a:
        assert CANONICAL_V7.fullmatch(text)
        assert uuid.UUID(text).version == 7
    assert _timestamp_ms(seq_a[0]) == 1767225600000


def test_deterministic_ids_custom_start_and_range() -> None:
    gen = DeterministicIds(start_ms=0)
    assert gen() == "00000000-0000-7000-8000-000000000001"
    with pytest.raises(ValueError):
        DeterministicIds(start_ms=-1)


def test_generators_satisfy_protocol() -> None:
    gens: list[IdGenerator] = [Uuid7Generator(), DeterministicIds()]
    for gen in gens:
        assert is_uuid(gen())


@pytest.mark.parametrize(
    "text",
    [
        "00000000-0000-0000-0000-000000000000",
        "ffffffff-ffff-ffff-ffff-ffffffffffff",
        "123e4567-e89b-12d3-a456-426614174000",
        "123E4567-E89B-12D3-A456-426614174000",
        str(uuid.UUID(int=0x7CC16BF72FF24913907B76F0B232BF50)),  # what uuid4() writes
    ],
)
def test_is_uuid_accepts_canonical_text(text: str) -> None:
    assert is_uuid(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "123e4567e89b12d3a456426614174000",
        "{123e4567-e89b-12d3-a456-426614174000}",
        "urn:uuid:123e4567-e89b-12d3-a456-426614174000",
        "123e4567-e89b-12d3-a456-42661417400",
        "123e4567-e89b-12d3-a456-4266141740000",
        "123e4567-e89b-12d3-a456-42661417400g",
        "123e4567-e89b-12d3-a456-426614174000\n",
        " 123e4567-e89b-12d3-a456-426614174000",
        "\uff11\uff12\uff13e4567-e89b-12d3-a456-426614174000",  # fullwidth digits
    ],
)
def test_is_uuid_rejects_other_text(text: str) -> None:
    assert not is_uuid(text)
