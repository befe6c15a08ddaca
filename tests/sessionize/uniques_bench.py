"""Costs of the user sketches (not a test; nothing asserted):
`.venv/bin/python -m tests.sessionize.uniques_bench`.

Prints, on this machine:
- storage: the bytes of kpi_1m.users_sketch per row for the two streams the tests run through sessionize
  (the shared 20-minute stream and the 7-day stream of test_uniques_e2e; the oracle's bytes, which the tests
  show equal the job's), beside a row's other columns;
- the JVM function: rows/s of io.uxstream.udf.UserSketch.eval (HMAC pseudonyms + sketch) through its command
  line, for minute rows of 10 and of 200 users;
- the merge: `uxstream.uniques.merge` of 7 days and of 30 days of minute sketches (10,080 and 43,200 rows)
  of 200 users each, drawn from 50,000 (what `uxstream uniques` does after reading the rows).
"""

from __future__ import annotations

import random
import subprocess
import tempfile
import time
from pathlib import Path

from jobs.common import privacy, sketches, tables
from jobs.common.oracle import load
from jobs.sessionize.oracle import expected
from tests.decode.support import jvm_classpath
from tests.sessionize.test_uniques_e2e import WEEK_ARGS
from tests.support.sessionize import GENERATOR_ARGS, PSEUDONYM
from tests.support.streams import generate_truth
from uxstream import uniques


def storage(name: str, args: tuple[str, ...], folder: Path) -> None:
    truth_file = folder / f"{name}.jsonl"
    generate_truth(list(args), truth_file)
    rows = expected(load(truth_file).events, pseudonym=PSEUDONYM)[tables.KPI_1M]
    sizes = sorted(len(r["users_sketch"]) for r in rows)
    users = sum(r["active_users"] for r in rows)
    print(
        f"storage, {name}: {len(rows):,} kpi_1m rows, users_sketch {sum(sizes) / len(rows):.1f} bytes/row "
        f"on average (median {sizes[len(sizes) // 2]}, max {sizes[-1]}), {sum(sizes) / users:.2f} bytes "
        f"per counted user"
    )


def jvm_rate(users_per_row: int, rows: int, folder: Path) -> None:
    key = folder / "key"
    key.write_text("uniques-bench-key")
    keys = privacy.key_files({privacy.ENV_KEY_FILE: str(key)})
    line = "\t".join(f"anon-{i}" for i in range(users_per_row)) + "\n"
    command = ["java", "-Xmx256m", "-cp", jvm_classpath(table=True), "io.uxstream.udf.UserSketch"]
    command += [str(sketches.LG_K), sketches.HLL_TYPE, keys]

    def run(n: int) -> float:
        start = time.perf_counter()
        subprocess.run(command, input=line * n, capture_output=True, text=True, check=True)
        return time.perf_counter() - start

    base = run(1)  # JVM start-up, subtracted
    elapsed = run(rows) - base
    print(f"JVM user_sketch, {users_per_row} users/row: {rows / elapsed:,.0f} rows/s (start-up excluded)")


def merge_rate(windows: int) -> None:
    rng = random.Random(1)
    population = [f"k1_{rng.getrandbits(128):032x}" for _ in range(50_000)]
    rows = [sketches.user_sketch_bytes(rng.sample(population, 200)) for _ in range(windows)]
    start = time.perf_counter()
    result = uniques.merge(rows)
    elapsed = time.perf_counter() - start
    print(
        f"merge of {windows:,} minute sketches (200 users each, {sum(map(len, rows)) / 1e6:.1f} MB): "
        f"{elapsed * 1000:.0f} ms, estimate {result.estimate:,.0f} "
        f"({result.lower_bound:,.0f} to {result.upper_bound:,.0f})"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        storage("shared 20-minute stream", GENERATOR_ARGS, folder)
        storage("7-day stream", WEEK_ARGS, folder)
        jvm_rate(10, 20_000, folder)
        jvm_rate(200, 5_000, folder)
    merge_rate(10_080)
    merge_rate(43_200)


if __name__ == "__main__":
    main()
