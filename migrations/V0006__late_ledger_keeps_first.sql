-- The late ledger keeps the first classification of a record (issue 15, until the sessionize core makes
-- the classification replay-stable): the jobs write it with the JDBC upsert, and after a restore from a
-- checkpoint the replayed row of the same Kafka record can carry another watermark (watermarks are not
-- checkpointed). So an upsert that replays a record already in the ledger — same partition, same or an
-- earlier offset — leaves the row as it is. A later record with the same key (a re-sent event that is
-- late again) still replaces it, as before: the ledger row describes the key's last late arrival.
-- DELETE (privacy erase) is unaffected.
CREATE FUNCTION late_events_keep_first() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.source_partition = OLD.source_partition AND NEW.source_offset <= OLD.source_offset THEN
    RETURN NULL;  -- a replay: the row keeps its first classification
  END IF;
  RETURN NEW;
END
$$;

CREATE TRIGGER late_events_keep_first
  BEFORE UPDATE ON late_events
  FOR EACH ROW EXECUTE FUNCTION late_events_keep_first();
