-- Readable alerts (issue 21): what the alert looked like when it opened and at its worst, kept on the
-- resolved row too (the other columns describe the latest window). NULL on rows written before this
-- migration (and by a job restored from state of alerts that were open before it). Nullable without a
-- default, so this is cheap on the TimescaleDB hypertable (T0004), compressed chunks included.
-- Numbered 9: V0008 is taken by the erasure branch.
ALTER TABLE anomalies
  ADD COLUMN peak_value      DOUBLE PRECISION,  -- value of the most extreme window (|z|) since opening
  ADD COLUMN opened_baseline DOUBLE PRECISION,  -- baseline in force for the opening window (pre-incident)
  ADD COLUMN opened_z        DOUBLE PRECISION;  -- robust z of the opening window
