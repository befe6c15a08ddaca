-- TimescaleDB only, repeatable: re-applied whenever this text or one of its settings changes.
-- Variables (psql style, so `psql -v retention_days=90 -v compress_after_days=7 -f` runs it too):
--   :'retention_days'       UXSTREAM_RETENTION_DAYS (default 90): chunks older than this are dropped
--   :'compress_after_days'  UXSTREAM_COMPRESS_AFTER_DAYS (default 7): chunks older than this are compressed
-- The hourly continuous aggregate kpi_1h keeps its rows after the raw chunks are dropped.

-- Every hypertable (T0001 sessionize, T0003 funnels, T0004 anomaly) gets the same two policies.
SELECT remove_retention_policy(t, if_exists => TRUE)
FROM unnest(ARRAY['sessions', 'kpi_1m', 'kpi_sliding_5m', 'kpi_daily_cumulative', 'late_events',
             'funnel_attempts', 'funnel_windows', 'funnel_window_steps', 'anomalies']::regclass[]) AS t;
SELECT remove_compression_policy(t, if_exists => TRUE)
FROM unnest(ARRAY['sessions', 'kpi_1m', 'kpi_sliding_5m', 'kpi_daily_cumulative', 'late_events',
             'funnel_attempts', 'funnel_windows', 'funnel_window_steps', 'anomalies']::regclass[]) AS t;

SELECT add_compression_policy(t, compress_after => make_interval(days => :'compress_after_days'::int))
FROM unnest(ARRAY['sessions', 'kpi_1m', 'kpi_sliding_5m', 'kpi_daily_cumulative', 'late_events',
             'funnel_attempts', 'funnel_windows', 'funnel_window_steps', 'anomalies']::regclass[]) AS t;
SELECT add_retention_policy(t, drop_after => make_interval(days => :'retention_days'::int))
FROM unnest(ARRAY['sessions', 'kpi_1m', 'kpi_sliding_5m', 'kpi_daily_cumulative', 'late_events',
             'funnel_attempts', 'funnel_windows', 'funnel_window_steps', 'anomalies']::regclass[]) AS t;
