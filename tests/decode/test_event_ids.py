"""The heap state backend's dedup memory (io.uxstream.udf.EventIds, jobs/common/decode.py `Dedup`): per
bucket of event ids, the occurrence numbers a window per event_id gives, with the state TTL's forgetting.
Check tier: the JVM class itself through its command line, no Flink; the end-to-end tests of sessionize
and funnels (MiniCluster, heap backend) and the cluster tests (RocksDB, per-id windows) cover the jobs.

The rule, per id: its first occurrence is 1, each later one the next number; an occurrence `ttl_ms` or
more (processing time) after the id's previous one starts again at 1 (the state TTL updates on create and
write and never returns expired state). The buckets are the state's keys, so `dedup_bucket` is a fixed
function of the id's UTF-8 bytes, pinned here.
"""

from __future__ import annotations

import random
import subprocess
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.decode.support import jvm_classpath

BUCKETS = 1024
HOUR = 3_600_000


def bucket(event_id: str) -> int:
    """dedup_bucket: FNV-1a over the UTF-8 bytes, then MurmurHash3's fmix32, low 10 bits."""
    h = 0x811C9DC5
    for byte in event_id.encode("utf-8"):
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    h ^= h >> 16
    return h & (BUCKETS - 1)


Step = tuple[int, int, str] | None
"""(now_ms, ttl_ms, event id), or None: every bucket through the serializer (written, read, copied)."""


def run(steps: Sequence[Step]) -> tuple[list[int], list[int]]:
    """The steps through EventIds' command line: the occurrence numbers, and the ids remembered at each
    round trip."""
    lines = [
        "ROUNDTRIP" if step is None else f"{step[0]} {step[1]} {bucket(step[2])} {step[2]}" for step in steps
    ]
    command = ["java", "-Xmx256m", "-cp", jvm_classpath(table=True), "io.uxstream.udf.EventIds"]
    done = subprocess.run(
        command, input="".join(f"{line}\n" for line in lines), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    assert len(out) == len(steps), done.stderr
    numbers = [int(line) for line in out if not line.startswith("IDS ")]
    remembered = [int(line.split()[1]) for line in out if line.startswith("IDS ")]
    return numbers, remembered


def model(steps: Sequence[Step]) -> list[int]:
    """The rule, per id (what a window per event_id with the state TTL gives)."""
    seen: dict[str, tuple[int, int]] = {}
    numbers = []
    for step in steps:
        if step is None:
            continue
        now, ttl, event_id = step
        count, last = seen.get(event_id, (0, now))
        number = 1 if count == 0 or (ttl > 0 and now - last >= ttl) else count + 1
        seen[event_id] = (number, now)
        numbers.append(number)
    return numbers


def test_the_bucket_is_the_pinned_function_of_the_utf8_bytes() -> None:
    ids = ["", "a", "evt-1", "é", "用户", "\uff21", "😀", "0" * 64, "f47ac10b-58cc-4372-a567-0e02b2c3d479"]
    command = ["java", "-Xmx256m", "-cp", jvm_classpath(table=True), "io.uxstream.udf.EventIds"]
    done = subprocess.run(
        command, input="".join(f"0 0 - {i}\n" for i in ids), capture_output=True, text=True, timeout=120
    )
    assert done.stdout.splitlines() == [f"B {bucket(i)}" for i in ids], done.stderr
    # pinned values: a change of the function is a change of the state layout
    assert [bucket(i) for i in ("a", "evt-1", "😀", "")] == [435, 923, 10, 11]


def test_duplicates_are_numbered_in_arrival_order_per_id() -> None:
    steps: list[Step] = [(0, 0, "a"), (1, 0, "b"), (2, 0, "a"), (3, 0, "a"), None, (4, 0, "b"), (5, 0, "c")]

    numbers, remembered = run(steps)

    assert numbers == [1, 1, 2, 3, 2, 1]
    assert remembered == [2]


def test_an_id_is_forgotten_ttl_after_its_last_occurrence_and_the_memory_is_freed() -> None:
    old = [f"old-{i}" for i in range(3000)]
    new = [f"new-{i}" for i in range(3000)]
    steps: list[Step] = [(0, HOUR, i) for i in old]
    steps += [(HOUR - 1, HOUR, old[0]), None]  # a duplicate refreshes its id: 2, remembered 1 h from now
    steps += [(HOUR, HOUR, i) for i in new]  # every other old id is expired now
    steps += [(HOUR, HOUR, old[1]), (HOUR, HOUR, old[0]), None]

    numbers, remembered = run(steps)

    assert numbers == [1] * 3000 + [2] + [1] * 3000 + [1, 3]
    touched = {bucket(i) for i in new}
    stale = sum(1 for i in old[2:] if bucket(i) not in touched)  # untouched buckets drop theirs later
    assert remembered == [3000, 3000 + 2 + stale]


ids = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\n\r"), min_size=0, max_size=12
)


@settings(max_examples=40, deadline=None)
@given(
    pool=st.lists(ids, min_size=1, max_size=30, unique=True),
    picks=st.lists(st.tuples(st.integers(0, 29), st.integers(0, 3 * HOUR), st.booleans()), max_size=120),
    ttl=st.sampled_from([0, HOUR, 2 * HOUR]),
)
def test_random_arrivals_numbered_as_a_window_per_id_with_the_state_ttl(
    pool: list[str], picks: list[tuple[int, int, bool]], ttl: int
) -> None:
    steps: list[Step] = []
    now = 0
    for pick, advance, roundtrip in picks:
        now += advance // 10 if advance % 3 else advance
        steps.append((now, ttl, pool[pick % len(pool)]))
        if roundtrip:
            steps.append(None)

    numbers, _ = run(steps)

    assert numbers == model(steps)


def test_many_ids_in_one_bucket_grow_and_survive_the_serializer() -> None:
    rng = random.Random(7)
    same = [i for i in (f"id-{rng.random()}" for _ in range(60_000)) if bucket(i) == 5][:40]
    steps: list[Step] = [(t, 0, same[t % len(same)]) for t in range(400)]
    steps.insert(200, None)

    numbers, remembered = run(steps)

    assert numbers == model(steps)
    assert remembered == [len(same)]
