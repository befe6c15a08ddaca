-- TimescaleDB only (applied by `uxstream db migrate` when the timescaledb extension is available; recorded
-- as skipped on plain PostgreSQL). Turns the sessionize tables of V0002 into hypertables on their time
-- column and declares how their chunks compress. The compression and retention *policies* (configurable
-- intervals) are in R__policies.sql.
--
-- create_default_indexes => FALSE: V0002 already created the time indexes that queries need, so plain
-- PostgreSQL and TimescaleDB have the same indexes. Chunks of one day keep retention and compression
-- fine-grained.

SELECT create_hypertable('sessions', 'session_start', chunk_time_interval => INTERVAL '1 day',
                         if_not_exists => TRUE, migrate_data => TRUE, create_default_indexes => FALSE);
SELECT create_hypertable('kpi_1m', 'window_start', chunk_time_interval => INTERVAL '1 day',
                         if_not_exists => TRUE, migrate_data => TRUE, create_default_indexes => FALSE);
SELECT create_hypertable('kpi_sliding_5m', 'window_start', chunk_time_interval => INTERVAL '1 day',
                         if_not_exists => TRUE, migrate_data => TRUE, create_default_indexes => FALSE);
SELECT create_hypertable('kpi_daily_cumulative', 'window_end', chunk_time_interval => INTERVAL '1 day',
                         if_not_exists => TRUE, migrate_data => TRUE, create_default_indexes => FALSE);
SELECT create_hypertable('late_events', 'event_time', chunk_time_interval => INTERVAL '1 day',
                         if_not_exists => TRUE, migrate_data => TRUE, create_default_indexes => FALSE);

-- Compression: segment by the low-cardinality column that queries filter on, order by time.
ALTER TABLE sessions SET (
  timescaledb.compress,
  timescaledb.compress_segmentby = '',
  timescaledb.compress_orderby = 'session_start DESC, session_id'
);
ALTER TABLE kpi_1m SET (
  timescaledb.compress,
  timescaledb.compress_segmentby = 'dimension',
  timescaledb.compress_orderby = 'window_start DESC, dimension_value'
);
ALTER TABLE kpi_sliding_5m SET (
  timescaledb.compress,
  timescaledb.compress_segmentby = 'dimension',
  timescaledb.compress_orderby = 'window_start DESC, dimension_value'
);
ALTER TABLE kpi_daily_cumulative SET (
  timescaledb.compress,
  timescaledb.compress_segmentby = 'dimension',
  timescaledb.compress_orderby = 'window_end DESC, dimension_value'
);
ALTER TABLE late_events SET (
  timescaledb.compress,
  timescaledb.compress_segmentby = 'job',
  timescaledb.compress_orderby = 'event_time DESC, event_id'
);
