-- sessionize recipe (SEMANTICS.md: Time, Validity and duplicates, Sessions, KPI windows).
-- Rendered by job.py; {placeholders} come from SessionizeSettings. The decode step (jobs/common/decode.py)
-- has already created `ux_events` (valid events) with the time attribute `event_time` and the watermark
-- "max event time - out-of-orderness", to which future timestamps do not contribute.

-- Instants go to PostgreSQL as UTC wall-clock TIMESTAMPs (see io.uxstream.udf.ToUtc).
CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS to_utc AS 'io.uxstream.udf.ToUtc' LANGUAGE JAVA;
-- Exact people for the cascaded KPI windows, logins stitched (io.uxstream.udf.UserSet, README "Active users
-- and logins"): user_set(user_id, anonymous_id) → a tumbling window's people (sorted users, those counted as
-- an anonymous id, links anonymous id → least user id); user_count(people) → the people of the union of
-- minute rows, every covered minute's links applied.
CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS user_set AS 'io.uxstream.udf.UserSet$Collect' LANGUAGE JAVA;
CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS user_count AS 'io.uxstream.udf.UserSet$Count' LANGUAGE JAVA;
-- user_sketch(users, key_files, lg_k, hll_type) → the DataSketches HLL bytes of the set's pseudonyms, sorted
-- first, so the bytes depend on the set alone (io.uxstream.udf.UserSketch; kpi_1m.users_sketch).
-- kpi_cells(...) → the cells of a 1-minute window for every dimension at once, one aggregate call per event
-- (io.uxstream.udf.KpiCells: counts, people as user_set has them, web-vital p75 as Flink's PERCENTILE).
CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS kpi_cells AS 'io.uxstream.udf.KpiCells' LANGUAGE JAVA;
CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS user_sketch AS 'io.uxstream.udf.UserSketch' LANGUAGE JAVA;
-- Gap-sessions per user (io.uxstream.udf.SessionEvents, a process table function with keyed state and one
-- event-time timer per user at last event + gap): one row per gap-session, its events packed as JSON.
CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS session_events AS 'io.uxstream.udf.SessionEvents' LANGUAGE JAVA;
-- pack_session_event (io.uxstream.udf.PackSessionEvent) is registered with the job's source view (job.py
-- `PACK_FUNCTION`), which packs each event's session fields into the column `packed`.
-- The final session rows of a gap-session run (io.uxstream.udf.SplitSessions, the JVM twin of
-- jobs.sessionize.logic.split_gap_session): midnight and max-duration splits, identity, pseudonyms.
CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS split_sessions AS 'io.uxstream.udf.SplitSessions' LANGUAGE JAVA;
-- Final KPI window rows as Confluent-framed kpi_window records for ux.kpi (io.uxstream.udf.EncodeKpiWindow, the
-- JVM twin of contract.encode of jobs.sessionize.logic.kpi_window_record; once per final window row).
CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS encode_kpi_window AS 'io.uxstream.udf.EncodeKpiWindow' LANGUAGE JAVA;

-- 1. The decode step's classification views (jobs/common/sql/classify.sql, created by job.py over
--    `ux_events`): `ledger` (late and future
--    arrivals), `on_time`, and `numbered` (occurrence per event_id: 1 = first, >1 = duplicate).

-- The on-time events with their occurrence number (the KPI dimension columns dim_<dimension> come with the
-- job's source view: job.py `events_view`).
CREATE TEMPORARY VIEW clean AS
SELECT *
FROM numbered;

-- 2. Sinks (late_sink, the late ledger, is created with the classification: jobs/common/sql/classify.sql).
CREATE TEMPORARY TABLE sessions_sink (
  session_id STRING NOT NULL,
  user_key STRING,
  session_start TIMESTAMP(3) NOT NULL,
  session_end TIMESTAMP(3),
  duration_ms BIGINT,
  event_count INT,
  page_views INT,
  distinct_pages INT,
  entry_page STRING,
  exit_page STRING,
  referrer STRING,
  utm_source STRING,
  utm_medium STRING,
  utm_campaign STRING,
  device_type STRING,
  browser STRING,
  country STRING,
  error_count INT,
  conversions INT,
  engaged_time_ms BIGINT,
  engaged BOOLEAN,
  bounce BOOLEAN,
  split_reason STRING,
  is_final BOOLEAN,
  feedback_responses INT,
  feedback STRING,
  device_key STRING,
  PRIMARY KEY (session_id, session_start) NOT ENFORCED
) WITH (
  {sessions_options}
);

CREATE TEMPORARY TABLE kpi_1m_sink (
  window_start TIMESTAMP(3) NOT NULL,
  window_end TIMESTAMP(3),
  dimension STRING NOT NULL,
  dimension_value STRING NOT NULL,
  events BIGINT,
  page_views BIGINT,
  active_users BIGINT,
  error_events BIGINT,
  conversions BIGINT,
  duplicates BIGINT,
  error_rate DOUBLE,
  lcp_p75 DOUBLE,
  inp_p75 DOUBLE,
  cls_p75 DOUBLE,
  revision INT,
  users_sketch BYTES,
  bot_events BIGINT,
  feedback_responses BIGINT,
  nps_responses BIGINT,
  nps_score_sum BIGINT,
  nps_promoters BIGINT,
  nps_passives BIGINT,
  nps_detractors BIGINT,
  nps DOUBLE,
  csat_responses BIGINT,
  csat_score_sum BIGINT,
  PRIMARY KEY (window_start, dimension, dimension_value) NOT ENFORCED
) WITH (
  {kpi_1m_options}
);

CREATE TEMPORARY TABLE kpi_sliding_sink (
  window_start TIMESTAMP(3) NOT NULL,
  window_end TIMESTAMP(3),
  dimension STRING NOT NULL,
  dimension_value STRING NOT NULL,
  active_users BIGINT,
  page_views BIGINT,
  error_events BIGINT,
  error_rate DOUBLE,
  PRIMARY KEY (window_start, dimension, dimension_value) NOT ENFORCED
) WITH (
  {kpi_sliding_options}
);

CREATE TEMPORARY TABLE kpi_daily_sink (
  `day` DATE,
  window_start TIMESTAMP(3),
  window_end TIMESTAMP(3) NOT NULL,
  dimension STRING NOT NULL,
  dimension_value STRING NOT NULL,
  daily_active_users BIGINT,
  page_views BIGINT,
  PRIMARY KEY (window_end, dimension, dimension_value) NOT ENFORCED
) WITH (
  {kpi_daily_options}
);

-- Final KPI windows as kpi_window.v2 records for the anomaly job (exactly-once; read with read_committed).
-- Key: the series `window_kind|dimension|dimension_value`, so a series stays in one partition, in order.
-- With publishing off (kpi_topic empty) the options are a blackhole's and nothing inserts into it.
CREATE TEMPORARY TABLE kpi_topic_sink (
  kafka_key STRING,
  payload BYTES
) WITH (
  {kpi_topic_options}
);
