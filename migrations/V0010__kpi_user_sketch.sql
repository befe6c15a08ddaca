-- Unique users over any range (issue 20 item 3; README "Unique users over any range"): each kpi_1m row
-- also stores a mergeable sketch of its users, an Apache DataSketches HLL sketch (compact serialization;
-- lg_k and type in jobs/common/sketches.py) of the pseudonyms of the row's distinct user keys, written by
-- sessionize (io.uxstream.udf.UserSketch) and merged by `uxstream uniques` and the dashboard
-- (uxstream/uniques.py). The union of the sketches of any set of rows of one dimension value estimates the
-- distinct users of those windows together; summing active_users would count a returning user once per
-- minute.
-- Nullable without a default: cheap on the TimescaleDB hypertable (T0001), compressed chunks included;
-- NULL on rows written before this migration (the merge reports how many windows had no sketch).
-- The reader, writer and eraser roles hold table-level grants on kpi_1m (V0007), which cover a new column.
ALTER TABLE kpi_1m
  ADD COLUMN users_sketch BYTEA;  -- DataSketches HLL of the row's user pseudonyms (NULL: written before V0010)
