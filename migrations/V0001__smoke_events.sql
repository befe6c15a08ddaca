-- Output table of the smoke pipeline (jobs/smoke): one row per event, upserted on event_id.
CREATE TABLE IF NOT EXISTS smoke_events (
  event_id   TEXT PRIMARY KEY,
  user_id    TEXT,
  path       TEXT,
  event_time TIMESTAMP(3) WITHOUT TIME ZONE
);
