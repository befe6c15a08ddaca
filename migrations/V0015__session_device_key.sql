-- Identity (issue 22 item 4; README "Identity: one visitor across a login"): sessions run per device key
-- (the anonymous id, else the user id) and are attributed to the user a login on the device names, so a
-- session's user_key may differ from the device it ran on. device_key holds the pseudonym of that device
-- key, so that erase and export by an anonymous id reach the sessions it was stitched into. NULL on rows
-- written before this migration (their user_key was the device key unless the user logged in).
ALTER TABLE sessions
  ADD COLUMN device_key TEXT;
CREATE INDEX sessions_device_key_idx ON sessions (device_key, session_start);

-- An erased pseudonym stays erased as a device too: a session row whose device_key is on the erased list
-- is not stored (V0008 step 5 covers user_key; this replaces the sessions trigger's function).
CREATE FUNCTION skip_erased_session_rows() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF EXISTS (
    SELECT 1 FROM erased_pseudonyms WHERE pseudonym = NEW.user_key OR pseudonym = NEW.device_key
  ) THEN
    RETURN NULL;
  END IF;
  RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION skip_erased_session_rows() FROM PUBLIC;

DROP TRIGGER sessions_skip_erased ON sessions;
CREATE TRIGGER sessions_skip_erased BEFORE INSERT ON sessions
  FOR EACH ROW EXECUTE FUNCTION skip_erased_session_rows();
