-- Output tables of the funnels job (SEMANTICS.md "Funnels"), names in jobs/common/tables.py. Plain
-- PostgreSQL; on TimescaleDB migrations/timescaledb/T0003__funnels.sql turns them into hypertables, so every
-- unique key includes the table's time column. Keys are deterministic (attempt id = hash of funnel, user
-- key and entry time; window + dimension value), so a replay upserts the same rows. Late events of the
-- funnels job go to the shared late_events ledger with job = 'funnels'.

-- One row per ended attempt (written once, when it converted, dropped or was excluded).
CREATE TABLE funnel_attempts (
  attempt_id         TEXT        NOT NULL,  -- sha256(funnel, user key, entered_at), 32 hex digits
  funnel             TEXT        NOT NULL,  -- funnel definition name
  user_key           TEXT        NOT NULL,  -- user_id, else anonymous_id
  entered_at         TIMESTAMPTZ NOT NULL,  -- time of the entry (step 1) event
  ended_at           TIMESTAMPTZ NOT NULL,  -- converting/excluding/strict-breaking event, or the expiry deadline
  status             TEXT        NOT NULL
                     CONSTRAINT funnel_attempts_status_check CHECK (status IN ('converted', 'dropped', 'excluded')),
  furthest_step      INTEGER     NOT NULL,  -- steps reached (1 = entered only)
  steps              INTEGER     NOT NULL,  -- steps of the funnel
  step_times         TEXT        NOT NULL,  -- JSON array: epoch ms at which each step was reached, or null
  time_to_convert_ms BIGINT,                -- last step - entry, for converted attempts
  breakdown          TEXT        NOT NULL,  -- JSON object: breakdown dimension -> entry event's value
  CONSTRAINT funnel_attempts_pkey PRIMARY KEY (attempt_id, entered_at),
  CONSTRAINT funnel_attempts_steps_check CHECK (furthest_step BETWEEN 1 AND steps)
);
CREATE INDEX funnel_attempts_funnel_entered_idx ON funnel_attempts (funnel, entered_at);
CREATE INDEX funnel_attempts_user_key_idx ON funnel_attempts (user_key, entered_at);

-- Per funnel, tumbling window of entry time (default 1 h) and dimension value ('global' / '(all)', then
-- each breakdown dimension of the funnel, '(none)' when the entry event lacks it). Written once final:
-- when the watermark passed window end + conversion window. Excluded attempts count only in `excluded`.
CREATE TABLE funnel_windows (
  funnel                    TEXT             NOT NULL,
  window_start              TIMESTAMPTZ      NOT NULL,
  window_end                TIMESTAMPTZ      NOT NULL,
  dimension                 TEXT             NOT NULL,
  dimension_value           TEXT             NOT NULL,
  steps                     INTEGER          NOT NULL,
  entered                   BIGINT           NOT NULL,
  converted                 BIGINT           NOT NULL,
  dropped                   BIGINT           NOT NULL,
  excluded                  BIGINT           NOT NULL,
  conversion_rate           DOUBLE PRECISION,           -- converted / entered; NULL when entered = 0
  median_time_to_convert_ms DOUBLE PRECISION,           -- NULL when nothing converted
  revision                  INTEGER          NOT NULL DEFAULT 1,  -- 1 for the first final row
  CONSTRAINT funnel_windows_pkey PRIMARY KEY (funnel, window_start, dimension, dimension_value)
);
CREATE INDEX funnel_windows_start_idx ON funnel_windows (window_start);

-- One row per step of each funnel_windows row.
CREATE TABLE funnel_window_steps (
  funnel                   TEXT             NOT NULL,
  window_start             TIMESTAMPTZ      NOT NULL,
  window_end               TIMESTAMPTZ      NOT NULL,
  dimension                TEXT             NOT NULL,
  dimension_value          TEXT             NOT NULL,
  step                     INTEGER          NOT NULL,  -- 1-based
  step_name                TEXT             NOT NULL,  -- the step's event name
  reached                  BIGINT           NOT NULL,  -- attempts (not excluded) that reached this step
  conversion_from_previous DOUBLE PRECISION,           -- reached / reached of the previous step (NULL: step 1 or 0)
  drop_off                 BIGINT,                     -- reached here but not the next step (NULL: last step)
  CONSTRAINT funnel_window_steps_pkey PRIMARY KEY (funnel, window_start, dimension, dimension_value, step)
);
CREATE INDEX funnel_window_steps_start_idx ON funnel_window_steps (window_start);
