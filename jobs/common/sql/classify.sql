-- Arrival classification shared by the jobs (SEMANTICS.md: Time, Validity and duplicates). Rendered by
-- jobs/common/decode.py `classify_statements`; {source} is a view of valid events whose time attribute
-- `event_time` carries the decode step's watermark (future timestamps do not move it).
--
-- Every event is classified on arrival. CURRENT_WATERMARK is NULL before the first watermark, hence the
-- COALESCE. Future events (more than max_future_skew ahead of the broker receive time) and late events (at
-- or below the watermark) go to the late ledger (view `ledger`); the rest are numbered per event_id in arrival order
-- (1 = first occurrence; >1 = duplicate), which dedups and counts duplicates in one operator.
CREATE TEMPORARY VIEW classified AS
SELECT
  *,
  COALESCE(NULLIF(user_id, ''), anonymous_id) AS user_key,
  event_time > kafka_timestamp + {max_future_skew} AS is_future,
  CURRENT_WATERMARK(event_time) AS watermark_at_arrival,
  PROCTIME() AS arrival
FROM {source};

CREATE TEMPORARY VIEW on_time AS
SELECT *
FROM classified
WHERE NOT is_future AND NOT COALESCE(event_time <= watermark_at_arrival, FALSE);

-- The late ledger: late and future arrivals, and the table the job writes them to (late_events; each job
-- counts them in its INSERT, jobs.common.counters.ledger_counters).
-- Its columns beside `classified`'s: reason, watermark_ms (epoch ms of the watermark at arrival) and
-- lateness_ms (NULL for a future event).
CREATE TEMPORARY VIEW ledger AS
SELECT
  *,
  CASE WHEN is_future THEN 'future_timestamp' ELSE 'late' END AS reason,
  CASE WHEN is_future THEN CAST(NULL AS BIGINT) ELSE watermark_ms - ts END AS lateness_ms
FROM (
  SELECT
    *,
    UNIX_TIMESTAMP(CAST(watermark_at_arrival AS STRING)) * 1000
      + EXTRACT(MILLISECOND FROM watermark_at_arrival) AS watermark_ms
  FROM classified
  WHERE is_future OR COALESCE(event_time <= watermark_at_arrival, FALSE)
);

CREATE TEMPORARY TABLE late_sink (
  job STRING NOT NULL,
  event_id STRING NOT NULL,
  event_time TIMESTAMP(3) NOT NULL,
  received_at TIMESTAMP(3),
  `watermark` TIMESTAMP(3),
  lateness_ms BIGINT,
  reason STRING,
  page_path STRING,
  country STRING,
  device_type STRING,
  source_partition INT,
  source_offset BIGINT,
  PRIMARY KEY (job, event_id, event_time) NOT ENFORCED
) WITH (
  {late_sink_options}
);

-- occurrence_count is COUNT(*) that also counts the duplicates (uxstream.<duplicates_counter>.total) in the one
-- operator that sees each of them once (io.uxstream.udf.OccurrenceCount).
CREATE TEMPORARY VIEW numbered AS
SELECT
  *,
  occurrence_count('{duplicates_counter}') OVER (
    PARTITION BY event_id ORDER BY arrival ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
  ) AS occurrence
FROM on_time;
