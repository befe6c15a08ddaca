-- Engaged time (issue 22 item 5; README "Engaged time"): a session's foreground time, the sum of the
-- engagement_time_ms its events report (heartbeats, page pings: clients send them while the page is
-- visible), or the span between its first and last event when no event reports any. A session is engaged
-- when this exceeds 10 s, or it has >= 2 page views, or a conversion. Nullable: NULL on rows written
-- before this migration. The roles' table-level grants (V0007) cover the new column.
ALTER TABLE sessions
  ADD COLUMN engaged_time_ms BIGINT;
