-- Output table of the anomaly job (SEMANTICS.md "Anomalies"; jobs/anomaly/logic.py). Name in
-- jobs/common/tables.py. One row per alert, upserted on every lifecycle message (open, update, resolved):
-- the key is deterministic (alert_id = hash of series + first window of the opening run, and that window's
-- start), so a replay rewrites the same rows. Every time is event time (window bounds), never processing
-- time. On TimescaleDB, T0004__anomaly.sql makes it a hypertable on opened_window_start.
CREATE TABLE anomalies (
  alert_id            TEXT             NOT NULL,
  opened_window_start TIMESTAMPTZ      NOT NULL,  -- start of the first anomalous window of the opening run
  opened_at           TIMESTAMPTZ      NOT NULL,  -- end of the window that opened the alert
  resolved_at         TIMESTAMPTZ,                -- end of the window that resolved it; NULL while open
  status              TEXT             NOT NULL
                      CONSTRAINT anomalies_status_check CHECK (status IN ('open', 'resolved')),
  source              TEXT             NOT NULL,  -- kpi or funnel
  metric              TEXT             NOT NULL,  -- e.g. error_rate, page_views, checkout.conversion_rate
  window_kind         TEXT             NOT NULL,  -- e.g. tumbling_1m
  dimension           TEXT             NOT NULL,  -- global, page_path, country, device_type
  dimension_value     TEXT             NOT NULL,  -- '(all)' for global, '(none)' when missing
  last_window_start   TIMESTAMPTZ      NOT NULL,  -- the window of the latest message
  last_window_end     TIMESTAMPTZ      NOT NULL,
  value               DOUBLE PRECISION,           -- value of that window (NULL: the window had none)
  baseline            DOUBLE PRECISION NOT NULL,  -- expected value (hour-of-week median or EWMA)
  baseline_method     TEXT             NOT NULL,  -- hour_of_week or ewma
  mad                 DOUBLE PRECISION NOT NULL,  -- spread used (MAD after its floor)
  z_score             DOUBLE PRECISION NOT NULL,  -- robust z of that window
  peak_z              DOUBLE PRECISION NOT NULL,  -- z of the most extreme window while open
  threshold           DOUBLE PRECISION NOT NULL,
  severity            TEXT             NOT NULL,  -- warning or critical (highest reached)
  anomalous_windows   INTEGER          NOT NULL,  -- anomalous windows so far
  CONSTRAINT anomalies_pkey PRIMARY KEY (alert_id, opened_window_start)
);
CREATE INDEX anomalies_status_idx ON anomalies (status, opened_window_start);
CREATE INDEX anomalies_series_idx ON anomalies (metric, dimension, dimension_value, opened_window_start);
