-- Erasure that is complete and stays erased (issue 16 item 2; README "Privacy").
--
-- 1. The late ledger names its user: user_key holds the pseudonym of the event's user key, like sessions
--    and funnel_attempts, so `uxstream privacy erase` reaches late rows too. Rows written before this
--    migration have no user_key (NULL): they age out with the retention policy.
ALTER TABLE late_events ADD COLUMN user_key TEXT;
CREATE INDEX late_events_user_key_idx ON late_events (user_key, event_time);

-- 2. The erased-pseudonym list: every pseudonym an erase request covered (each id of the user under each
--    non-retired key). The jobs load it (io.uxstream.udf.ErasedUser, as the reader role) and drop the
--    events of these users before they reach keys, state or tables, refreshing it while they run.
CREATE TABLE erased_pseudonyms (
  pseudonym TEXT        NOT NULL PRIMARY KEY,  -- <key id>_<128-bit HMAC>
  erased_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- 3. Privacy requests name every pseudonym they covered (pseudonym stays the first: the user id under the
--    current key).
ALTER TABLE privacy_requests ADD COLUMN pseudonyms TEXT[];

-- 4. Grants (V0007__roles.sql describes the roles). The eraser deletes the user's rows from every
--    user-keyed table (smoke_events stores the demo's raw user_id) and adds to the erased list (INSERT …
--    ON CONFLICT DO NOTHING needs no SELECT); export reads the list. The reader role is what the jobs'
--    erased-list lookup connects as.
GRANT SELECT, DELETE ON late_events, smoke_events TO uxstream_eraser;
GRANT SELECT, INSERT ON erased_pseudonyms TO uxstream_eraser;
GRANT SELECT ON erased_pseudonyms TO uxstream_reader;

-- 5. The database keeps an erased user erased whatever writes: a row keyed by an erased pseudonym is not
--    stored (the INSERT, or the upsert, of that row does nothing). The jobs already drop the events of
--    erased users before any state; this guard covers the rows that come out of state restored from a
--    checkpoint or savepoint taken before the erase (open sessions, funnel attempts in flight), and any
--    writer that runs without the lookup. SECURITY DEFINER: the writer role needs no access to the list.
CREATE FUNCTION skip_erased_user_rows() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF NEW.user_key IS NOT NULL AND EXISTS (SELECT 1 FROM erased_pseudonyms WHERE pseudonym = NEW.user_key) THEN
    RETURN NULL;
  END IF;
  RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION skip_erased_user_rows() FROM PUBLIC;

CREATE TRIGGER sessions_skip_erased BEFORE INSERT ON sessions
  FOR EACH ROW EXECUTE FUNCTION skip_erased_user_rows();
CREATE TRIGGER funnel_attempts_skip_erased BEFORE INSERT ON funnel_attempts
  FOR EACH ROW EXECUTE FUNCTION skip_erased_user_rows();
CREATE TRIGGER late_events_skip_erased BEFORE INSERT ON late_events
  FOR EACH ROW EXECUTE FUNCTION skip_erased_user_rows();
