-- Least privilege (issue 16 item 3; README "Security: PostgreSQL roles and TLS"). Four roles, one per
-- kind of client; this file creates any that is missing (NOLOGIN: a DBA gives them LOGIN and a password,
-- or grants them to login roles of their own; the local server's setup does both) and grants each what it
-- needs, nothing more. Roles are per server and this runs once per database: every statement is
-- idempotent. A migration that adds a table grants it here too (tests/db/test_roles.py lists every table).
--
--   uxstream_migrator  runs `uxstream db migrate`: owns the schema and every table (DDL)
--   uxstream_writer    the Flink jobs: INSERT, UPDATE and SELECT on the output tables. The JDBC sink
--                      writes INSERT … ON CONFLICT (key) DO UPDATE SET c = EXCLUDED.c for every column,
--                      and PostgreSQL requires SELECT on each column such an upsert sets (without it:
--                      "permission denied"); the anomaly job's warm start reads kpi_1m. No DELETE,
--                      TRUNCATE or DDL, nothing on other tables.
--   uxstream_reader    dashboards, `uxstream validate`, `uxstream alerts`: SELECT on the outputs
--   uxstream_eraser    `uxstream privacy erase|export`: SELECT and DELETE on the user-keyed tables,
--                      INSERT on the audit table privacy_requests
DO $$
DECLARE
  name TEXT;
BEGIN
  FOREACH name IN ARRAY ARRAY['uxstream_migrator', 'uxstream_writer', 'uxstream_reader', 'uxstream_eraser'] LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = name) THEN
      EXECUTE format('CREATE ROLE %I NOLOGIN', name);
    END IF;
  END LOOP;
END
$$;

-- Before PostgreSQL 15 every role may create objects in schema public; the schema's owner takes that back
-- (elsewhere: ask the DBA).
DO $$
BEGIN
  IF pg_has_role((SELECT nspowner FROM pg_namespace WHERE nspname = 'public'), 'USAGE') THEN
    REVOKE CREATE ON SCHEMA public FROM PUBLIC;
  END IF;
END
$$;
GRANT USAGE ON SCHEMA public TO uxstream_writer, uxstream_reader, uxstream_eraser;

GRANT SELECT, INSERT, UPDATE ON
  smoke_events, sessions, kpi_1m, kpi_sliding_5m, kpi_daily_cumulative, late_events,
  funnel_attempts, funnel_windows, funnel_window_steps, anomalies
  TO uxstream_writer;

GRANT SELECT ON
  smoke_events, sessions, kpi_1m, kpi_sliding_5m, kpi_daily_cumulative, late_events,
  funnel_attempts, funnel_windows, funnel_window_steps, anomalies,
  sessions_started_1m, late_events_1m, kpi_1m_full
  TO uxstream_reader;

GRANT SELECT, DELETE ON sessions, funnel_attempts TO uxstream_eraser;
GRANT INSERT ON privacy_requests TO uxstream_eraser;
