-- The late ledger keeps the first classification of a record (issue 15, until the sessionize core makes
-- the classification replay-stable): the jobs write it with the JDBC upsert, and after a restore from a
-- checkpoint the replayed row can carry another watermark (watermarks are not checkpointed). A row that
-- is already in the ledger is therefore never updated: the upsert's DO UPDATE becomes a no-op, so the
-- ledger is insert-only for its key (job, event_id, event_time). DELETE (privacy erase) is unaffected.
CREATE FUNCTION late_events_keep_first() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RETURN NULL;  -- skip the update: the row keeps its first classification
END
$$;

CREATE TRIGGER late_events_insert_only
  BEFORE UPDATE ON late_events
  FOR EACH ROW EXECUTE FUNCTION late_events_keep_first();
