-- Output tables of the sessionize job (SEMANTICS.md "Sessions", "KPI windows", "Time"), names in
-- jobs/common/tables.py. Plain PostgreSQL: on TimescaleDB, migrations/timescaledb/ then turns these tables
-- into hypertables, so every unique key includes the table's time column (DESIGN.md §4) and no table has
-- an index or constraint that a hypertable could not hold. All times are TIMESTAMPTZ (UTC instants).
-- Keys are deterministic (window + dimension, session id + start, job + event id + event time), so a
-- replay upserts the same rows (effectively-once through the JDBC connector's upsert mode).

-- One row per session. A row is final once the watermark passed session_end + session gap.
CREATE TABLE sessions (
  session_id     TEXT        NOT NULL,  -- hash of user key + session start (jobs/sessionize/logic.py)
  user_key       TEXT        NOT NULL,  -- pseudonymised user_id, else anonymous_id
  session_start  TIMESTAMPTZ NOT NULL,  -- first event time
  session_end    TIMESTAMPTZ NOT NULL,  -- last event time
  duration_ms    BIGINT      NOT NULL,  -- session_end - session_start
  event_count    INTEGER     NOT NULL,
  page_views     INTEGER     NOT NULL,
  distinct_pages INTEGER     NOT NULL,
  entry_page     TEXT,                  -- page path of the first page view (NULL: no page view)
  exit_page      TEXT,                  -- page path of the last page view
  referrer       TEXT,                  -- first event's referrer and UTM tags
  utm_source     TEXT,
  utm_medium     TEXT,
  utm_campaign   TEXT,
  device_type    TEXT,
  browser        TEXT,
  country        TEXT,
  error_count    INTEGER     NOT NULL,
  conversions    INTEGER     NOT NULL,
  engaged        BOOLEAN     NOT NULL,  -- GA4: > 10 s, or >= 2 page views, or >= 1 conversion
  bounce         BOOLEAN     NOT NULL,  -- NOT engaged
  split_reason   TEXT        NOT NULL
                 CONSTRAINT sessions_split_reason_check
                 CHECK (split_reason IN ('gap', 'midnight', 'max_duration', 'open')),
  is_final       BOOLEAN     NOT NULL,
  CONSTRAINT sessions_pkey PRIMARY KEY (session_id, session_start)
);
CREATE INDEX sessions_user_key_start_idx ON sessions (user_key, session_start);
CREATE INDEX sessions_start_idx ON sessions (session_start);

-- Tumbling 1-minute windows per dimension. A row is written when final and corrected by upsert if late
-- data within allowed lateness changes it (revision increments).
CREATE TABLE kpi_1m (
  window_start    TIMESTAMPTZ      NOT NULL,
  window_end      TIMESTAMPTZ      NOT NULL,
  dimension       TEXT             NOT NULL,  -- 'global', 'page_path', 'country', 'device_type'
  dimension_value TEXT             NOT NULL,  -- '(all)' for global, '(none)' when the event lacks it
  events          BIGINT           NOT NULL,  -- counted events: valid, first occurrence, on time
  page_views      BIGINT           NOT NULL,
  active_users    BIGINT           NOT NULL,  -- exact distinct user keys
  error_events    BIGINT           NOT NULL,
  conversions     BIGINT           NOT NULL,
  duplicates      BIGINT           NOT NULL,  -- repeated event ids within the dedup TTL
  error_rate      DOUBLE PRECISION,           -- error_events / page_views; NULL when page_views = 0
  lcp_p75         DOUBLE PRECISION,           -- web-vital p75 (NULL: no sample in the window)
  inp_p75         DOUBLE PRECISION,
  cls_p75         DOUBLE PRECISION,
  revision        INTEGER          NOT NULL DEFAULT 1,
  CONSTRAINT kpi_1m_pkey PRIMARY KEY (window_start, dimension, dimension_value)
);

-- Sliding windows of 5 minutes every minute.
CREATE TABLE kpi_sliding_5m (
  window_start    TIMESTAMPTZ      NOT NULL,
  window_end      TIMESTAMPTZ      NOT NULL,
  dimension       TEXT             NOT NULL,
  dimension_value TEXT             NOT NULL,
  active_users    BIGINT           NOT NULL,
  page_views      BIGINT           NOT NULL,
  error_events    BIGINT           NOT NULL,
  error_rate      DOUBLE PRECISION,           -- NULL when page_views = 0
  CONSTRAINT kpi_sliding_5m_pkey PRIMARY KEY (window_start, dimension, dimension_value)
);

-- Cumulative per local day (session time zone), one row per 5-minute step: totals so far that day.
CREATE TABLE kpi_daily_cumulative (
  day                DATE        NOT NULL,  -- local date in the session time zone
  window_start       TIMESTAMPTZ NOT NULL,  -- local midnight starting the day
  window_end         TIMESTAMPTZ NOT NULL,  -- end of this 5-minute step
  dimension          TEXT        NOT NULL,
  dimension_value    TEXT        NOT NULL,
  daily_active_users BIGINT      NOT NULL,
  page_views         BIGINT      NOT NULL,
  CONSTRAINT kpi_daily_cumulative_pkey PRIMARY KEY (window_end, dimension, dimension_value)
);

-- The late-event ledger: events below the watermark at arrival (reason 'late') and events too far
-- ahead of their broker receive time (reason 'future_timestamp'). Shared by the jobs (column job).
-- page_path / country / device_type let the views break late counts down like the KPI dimensions.
CREATE TABLE late_events (
  job              TEXT        NOT NULL,
  event_id         TEXT        NOT NULL,
  event_time       TIMESTAMPTZ NOT NULL,
  received_at      TIMESTAMPTZ NOT NULL,  -- broker (Kafka record) timestamp
  watermark        TIMESTAMPTZ,           -- watermark at arrival (NULL before the first watermark)
  lateness_ms      BIGINT,                -- watermark - event_time (NULL for future timestamps)
  reason           TEXT        NOT NULL
                   CONSTRAINT late_events_reason_check CHECK (reason IN ('late', 'future_timestamp')),
  source_partition INTEGER     NOT NULL,
  source_offset    BIGINT      NOT NULL,
  page_path        TEXT,
  country          TEXT,
  device_type      TEXT,
  CONSTRAINT late_events_pkey PRIMARY KEY (job, event_id, event_time)
);
CREATE INDEX late_events_event_time_idx ON late_events (event_time);

-- Sessions started per 1-minute window (of session_start) and dimension. A session's dimension values:
-- page_path = its entry page (first page view), country and device_type of its first event.
CREATE VIEW sessions_started_1m AS
SELECT date_bin(INTERVAL '1 minute', s.session_start, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS window_start,
       d.dimension,
       d.dimension_value,
       count(*) AS new_sessions
FROM sessions AS s
CROSS JOIN LATERAL (VALUES
  ('global', '(all)'),
  ('page_path', coalesce(s.entry_page, '(none)')),
  ('country', coalesce(s.country, '(none)')),
  ('device_type', coalesce(s.device_type, '(none)'))
) AS d (dimension, dimension_value)
GROUP BY 1, 2, 3;

-- Late events of the sessionize job (reason 'late') per 1-minute window of their event time and dimension.
CREATE VIEW late_events_1m AS
SELECT date_bin(INTERVAL '1 minute', l.event_time, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS window_start,
       d.dimension,
       d.dimension_value,
       count(*) AS late_events
FROM late_events AS l
CROSS JOIN LATERAL (VALUES
  ('global', '(all)'),
  ('page_path', coalesce(l.page_path, '(none)')),
  ('country', coalesce(l.country, '(none)')),
  ('device_type', coalesce(l.device_type, '(none)'))
) AS d (dimension, dimension_value)
WHERE l.job = 'sessionize' AND l.reason = 'late'
GROUP BY 1, 2, 3;

-- kpi_1m with the two per-window counts that come from other tables (SEMANTICS.md "Tumbling 1 min":
-- new sessions started, late events), with the same dimension logic as the two views above. Rows are
-- kpi_1m's rows: a window/dimension value that only has late events has no kpi_1m row, so its late count
-- is visible in late_events_1m only. The counts are looked up per row through the time indexes
-- (sessions_start_idx, late_events_event_time_idx), so a query for a time range reads only that range.
CREATE VIEW kpi_1m_full AS
SELECT k.window_start, k.window_end, k.dimension, k.dimension_value,
       k.events, k.page_views, k.active_users,
       s.new_sessions,
       k.error_events, k.error_rate, k.conversions,
       k.lcp_p75, k.inp_p75, k.cls_p75,
       k.duplicates,
       l.late_events,
       k.revision
FROM kpi_1m AS k
CROSS JOIN LATERAL (
  SELECT count(*) AS new_sessions
  FROM sessions AS x
  WHERE x.session_start >= k.window_start AND x.session_start < k.window_end
    AND CASE k.dimension
          WHEN 'global' THEN TRUE
          WHEN 'page_path' THEN coalesce(x.entry_page, '(none)') = k.dimension_value
          WHEN 'country' THEN coalesce(x.country, '(none)') = k.dimension_value
          WHEN 'device_type' THEN coalesce(x.device_type, '(none)') = k.dimension_value
          ELSE FALSE
        END
) AS s
CROSS JOIN LATERAL (
  SELECT count(*) AS late_events
  FROM late_events AS x
  WHERE x.event_time >= k.window_start AND x.event_time < k.window_end
    AND x.job = 'sessionize' AND x.reason = 'late'
    AND CASE k.dimension
          WHEN 'global' THEN TRUE
          WHEN 'page_path' THEN coalesce(x.page_path, '(none)') = k.dimension_value
          WHEN 'country' THEN coalesce(x.country, '(none)') = k.dimension_value
          WHEN 'device_type' THEN coalesce(x.device_type, '(none)') = k.dimension_value
          ELSE FALSE
        END
) AS l;
