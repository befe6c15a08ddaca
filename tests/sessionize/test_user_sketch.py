"""The user sketches of kpi_1m.users_sketch across the JVM and Python (issue 20 item 3).

The job writes the bytes with datasketches-java inside io.uxstream.udf.UserSketch; `uxstream uniques` and the
dashboard read them with the Python `datasketches` package (the C++ library). Here the JVM side runs as the
class's command line (no Flink job): the same keys give the same bytes on both sides in every mode of the
sketch (list, set, HLL), the function itself sketches exactly the pseudonyms Python computes, and a union of
JVM sketches equals Python's own union over the same keys and holds the exact count within its bounds.
"""

from __future__ import annotations

import random
import subprocess
from collections.abc import Sequence
from pathlib import Path

import datasketches

from jobs.common import privacy, sketches
from jobs.common.privacy import PrivacySettings, Pseudonymizer
from jobs.common.settings import Secret
from jobs.sessionize import job
from jobs.sessionize.settings import SessionizeSettings
from tests.decode.support import jvm_classpath
from uxstream import uniques

KEY = "uxstream-sketch-test-pseudonym-key-0123456789"


def jvm_sketches(groups: Sequence[Sequence[str]], key_files: str | None = None) -> list[tuple[bytes, float]]:
    """(bytes, the JVM's estimate) per group, from `UserSketch`'s command line; with `key_files` the keys
    are raw user keys that go through the Flink function's `eval` (pseudonyms first)."""
    for group in groups:
        assert all("\t" not in k and "\n" not in k for k in group)
    command = ["java", "-Xmx256m", "-cp", jvm_classpath(table=True), "io.uxstream.udf.UserSketch"]
    command += [str(sketches.LG_K), sketches.HLL_TYPE, *([key_files] if key_files else [])]
    done = subprocess.run(
        command,
        input="".join("\t".join(g) + "\n" for g in groups),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert len(lines) == len(groups), done.stderr
    return [(bytes.fromhex(h), float(e)) for h, e in (line.split("\t") for line in lines)]


def random_keys(rng: random.Random, n: int) -> list[str]:
    return [f"k1_{rng.getrandbits(128):032x}" for _ in range(n)]


def test_the_sketch_parameters_are_declared_once_and_the_job_passes_them() -> None:
    assert (sketches.LG_K, sketches.HLL_TYPE, sketches.BOUND_STD_DEVS) == (12, "HLL_4", 2)
    sql = "\n".join(job.statements(SessionizeSettings()))
    call = f"user_sketch(people.users, '{privacy.key_files()}', 12, 'HLL_4') AS users_sketch"
    assert call in sql


def test_jvm_bytes_equal_the_python_packages_for_the_same_keys_in_every_sketch_mode() -> None:
    rng = random.Random(7)
    groups = [
        [],  # empty: the empty sketch's 8 bytes
        ["k1_0"],
        [f"user-{i}" for i in range(7)],  # list mode
        random_keys(rng, 300),  # set mode
        random_keys(rng, 5000),  # HLL mode
        ["anon-ü-€-𝄞", "k1_ab", "k1_ab"],  # non-ASCII keys (UTF-8 on both sides), a repeated key
        list(reversed(random_keys(random.Random(3), 400))),  # the order given does not matter: sorted
    ]
    jvm = jvm_sketches(groups)
    for group, (data, jvm_estimate) in zip(groups, jvm, strict=True):
        assert data == sketches.user_sketch_bytes(group), len(group)
        read = datasketches.hll_sketch.deserialize(data)
        assert read.get_estimate() == jvm_estimate
        assert read.lg_config_k == sketches.LG_K
    assert jvm[0][0] == sketches.user_sketch_bytes([]) and len(jvm[0][0]) == 8
    assert jvm[6][0] == sketches.user_sketch_bytes(sorted(groups[6]))


def test_the_flink_function_sketches_the_pseudonyms_of_the_raw_user_keys(
    tmp_path: Path,
) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(KEY)
    env = {privacy.ENV_KEY_FILE: str(key_file)}
    pseudonym = Pseudonymizer(PrivacySettings(Secret(KEY)))
    groups = [[], ["usr_1"], ["usr_1", "anon-ü-€-𝄞", "usr_2"], [f"anon-{i}" for i in range(600)]]
    jvm = jvm_sketches(groups, key_files=privacy.key_files(env))
    for group, (data, _) in zip(groups, jvm, strict=True):
        assert data == sketches.user_sketch_bytes(pseudonym(u) for u in group)
    assert jvm[1][0] != sketches.user_sketch_bytes(["usr_1"]), "a raw user key must never be sketched"


def test_a_union_of_jvm_sketches_equals_pythons_union_and_holds_the_exact_count() -> None:
    """60 minute-like windows of 20-400 users drawn from 8,000 (users return across windows): the merged
    JVM sketches give the same estimate and bounds as Python's union of its own sketches of the same keys,
    and the exact number of distinct users lies within the bounds."""
    rng = random.Random(20)
    population = random_keys(rng, 8000)
    groups = [rng.sample(population, rng.randint(20, 400)) for _ in range(60)]
    exact = len(set().union(*groups))
    jvm = uniques.merge(data for data, _ in jvm_sketches(groups))

    union = datasketches.hll_union(sketches.LG_K)
    for group in groups:
        sketch = datasketches.hll_sketch(sketches.LG_K, sketches.hll_type())
        for key in group:
            sketch.update(key)
        union.update(sketch)
    std = sketches.BOUND_STD_DEVS
    python = (union.get_estimate(), union.get_lower_bound(std), union.get_upper_bound(std))
    assert (jvm.estimate, jvm.lower_bound, jvm.upper_bound) == python
    assert jvm.windows == 60
    assert jvm.lower_bound <= exact <= jvm.upper_bound, (exact, jvm)
    assert exact > 4000, "the union must be in HLL mode (estimated, not counted) for the test to mean much"
    assert sum(len(g) for g in groups) > exact * 1.5, "users must return across windows"
