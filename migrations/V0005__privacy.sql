-- Privacy requests (SEMANTICS.md "Privacy"): the audit trail of `uxstream privacy erase` and `export`.
-- A request names the user only by pseudonym (jobs/common/privacy.py); the raw id is never stored.
CREATE TABLE privacy_requests (
  request_id   BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kind         TEXT        NOT NULL CONSTRAINT privacy_requests_kind_check CHECK (kind IN ('erase', 'export')),
  pseudonym    TEXT        NOT NULL,  -- <key id>_<128-bit HMAC>
  requested_by TEXT        NOT NULL,  -- who ran it (operator name given to the command, or the OS user)
  reason       TEXT,                  -- e.g. the ticket of the data-subject request
  rows         JSONB       NOT NULL,  -- rows erased / exported per table, e.g. {"sessions": 3}
  done_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX privacy_requests_pseudonym_idx ON privacy_requests (pseudonym, done_at);
