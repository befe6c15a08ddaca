"""The user sketches of `kpi_1m.users_sketch` (README "Unique users over any range"), declared once.

Every KPI minute row stores an Apache DataSketches HLL sketch of the pseudonyms of its distinct users,
computed in the JVM by io.uxstream.udf.UserSketch (`user_sketch(...)` in jobs/sessionize/job.py, which
passes these constants as literals) and read in Python with the `datasketches` package
(uxstream/uniques.py merges the sketches of a range). The sketch's parameters live here and nowhere else:

- `LG_K` = 12: 4,096 buckets; relative standard error of the estimate ≈ 1.04 / √4096 ≈ 1.6 % (in HLL
  mode; below ~k/4 distinct users the sketch is in list/set mode and practically exact).
- `HLL_TYPE` = "HLL_4": 4 bits per bucket (≤ ~2.1 KB per row, a few bytes per user below that); the
  estimate does not depend on the type, and HLL_4's compact bytes from the Java library equal the C++
  library's (what the Python package wraps) for the same keys in the same order
  (tests/sessionize/test_user_sketch.py), which lets the oracle state the column's exact bytes.
- `BOUND_STD_DEVS` = 2: the bounds `uxstream uniques` and the dashboard report (≈ 95 % confidence).

Keys enter a sketch sorted (`user_sketch_bytes`, UserSketch.sketch), so a row's bytes are a function of its
set of users alone: replays and restores write the same bytes. No pyflink import here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

LG_K: Final = 12
HLL_TYPE: Final = "HLL_4"
BOUND_STD_DEVS: Final = 2


def hll_type() -> Any:
    """`HLL_TYPE` as the Python package's enum (the package is imported on use: it loads numpy)."""
    import datasketches

    return getattr(datasketches.tgt_hll_type, HLL_TYPE)


def user_sketch_bytes(keys: Iterable[str]) -> bytes:
    """The compact bytes UserSketch writes for these (pseudonymised) keys: the Python twin, for oracles."""
    import datasketches

    sketch = datasketches.hll_sketch(LG_K, hll_type())
    for key in sorted(set(keys)):
        sketch.update(key)
    return bytes(sketch.serialize_compact())
