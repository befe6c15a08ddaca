-- Bot traffic counted separately (issue 22 item 3): per KPI minute and dimension value, the valid, first,
-- on-time events whose user agent is a bot (is_bot, README "Enrichment"). With UXSTREAM_EXCLUDE_BOTS on
-- (the default) these events are in no other column of any KPI table, session or funnel; with it off they
-- are counted there too and bot_events still says how many of them were bots. NULL on rows written before
-- this migration. Nullable without a default, so this is cheap on the TimescaleDB hypertable (T0001).
-- Numbered 11: V0010 belongs to another branch.
ALTER TABLE kpi_1m
  ADD COLUMN bot_events BIGINT;
