-- TimescaleDB only: kpi_1h, an hourly continuous aggregate over kpi_1m, per dimension value.
--
-- Counts are sums of the minute rows. error_rate is recomputed from the summed counts (never an average
-- of minute rates). Not aggregable from minute rows, so not here: active_users (distinct users of an hour
-- are not the sum, nor the max, of distinct users per minute: the same user is active in many minutes)
-- and the web-vital p75s (a percentile of percentiles is not the hour's percentile); read those from
-- kpi_1m, or compute them from the events. peak_minute_active_users is the busiest minute's distinct users,
-- named so it cannot be mistaken for the hour's active users.
--
-- Real-time aggregation (materialized_only = false): the latest hours combine materialized buckets with
-- kpi_1m rows not yet materialized. Minute rows corrected by upsert (revision) invalidate their bucket,
-- which the refresh policy recomputes.
CREATE MATERIALIZED VIEW kpi_1h
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 hour', window_start) AS window_start,
       time_bucket(INTERVAL '1 hour', window_start) + INTERVAL '1 hour' AS window_end,
       dimension,
       dimension_value,
       sum(events)        AS events,
       sum(page_views)    AS page_views,
       sum(error_events)  AS error_events,
       sum(conversions)   AS conversions,
       sum(duplicates)    AS duplicates,
       sum(error_events)::DOUBLE PRECISION / nullif(sum(page_views), 0) AS error_rate,
       max(active_users)  AS peak_minute_active_users,
       count(*)           AS minutes_with_data
FROM kpi_1m
GROUP BY time_bucket(INTERVAL '1 hour', window_start), dimension, dimension_value
WITH NO DATA;

-- Materialize hours from 3 days back up to 1 hour ago, every 30 minutes. The retention period must stay
-- longer than these 3 days (checked by `uxstream db migrate`): refreshing a region whose kpi_1m chunks
-- were dropped would empty its hourly rows.
SELECT add_continuous_aggregate_policy('kpi_1h',
  start_offset => INTERVAL '3 days',
  end_offset => INTERVAL '1 hour',
  schedule_interval => INTERVAL '30 minutes',
  if_not_exists => TRUE);
