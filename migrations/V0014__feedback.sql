-- Qualitative feedback (issue 22 item 6; README "Feedback"): feedback events of schema v3 (a survey answer
-- on the 0-10 NPS scale or the 1-5 CSAT scale, an optional comment PII-scrubbed in the decode step).
--
-- kpi_1m: per minute and dimension value, the valid, first, on-time feedback events (bots excluded like
-- every other KPI column). Sums and counts, so any set of rows re-aggregates exactly: mean score =
-- *_score_sum / *_responses; NPS = 100 * (promoters - detractors) / nps_responses (promoters score 9-10,
-- passives 7-8, detractors 0-6), stored per row as `nps` (NULL without NPS responses). All NULL on rows
-- written before this migration; nullable without defaults, so this is cheap on the hypertable (T0001).
ALTER TABLE kpi_1m
  ADD COLUMN feedback_responses BIGINT,
  ADD COLUMN nps_responses BIGINT,
  ADD COLUMN nps_score_sum BIGINT,
  ADD COLUMN nps_promoters BIGINT,
  ADD COLUMN nps_passives BIGINT,
  ADD COLUMN nps_detractors BIGINT,
  ADD COLUMN nps DOUBLE PRECISION,
  ADD COLUMN csat_responses BIGINT,
  ADD COLUMN csat_score_sum BIGINT;

-- sessions: the feedback given in the session, so a low score reads next to the session's errors.
-- feedback_responses counts every feedback event of the session; feedback holds the first 20 of them in
-- time order as a JSON array of {"ts", "survey_id", "scale", "score", "comment"} (ts in epoch ms, comment
-- scrubbed, null when none was given); NULL when the session has no feedback (and on older rows).
ALTER TABLE sessions
  ADD COLUMN feedback_responses INTEGER,
  ADD COLUMN feedback JSONB;

-- kpi_1m_full gains the feedback columns and the mean score per scale (appended: CREATE OR REPLACE VIEW may only
-- add columns at the end; the grants of V0007 stay).
CREATE OR REPLACE VIEW kpi_1m_full AS
SELECT k.window_start, k.window_end, k.dimension, k.dimension_value,
       k.events, k.page_views, k.active_users,
       s.new_sessions,
       k.error_events, k.error_rate, k.conversions,
       k.lcp_p75, k.inp_p75, k.cls_p75,
       k.duplicates,
       l.late_events,
       k.revision,
       k.bot_events,
       k.feedback_responses,
       k.nps_responses, k.nps_score_sum, k.nps_promoters, k.nps_passives, k.nps_detractors, k.nps,
       k.nps_score_sum::double precision / NULLIF(k.nps_responses, 0) AS nps_mean_score,
       k.csat_responses, k.csat_score_sum,
       k.csat_score_sum::double precision / NULLIF(k.csat_responses, 0) AS csat_mean_score
FROM kpi_1m AS k
CROSS JOIN LATERAL (
  SELECT count(*) AS new_sessions
  FROM sessions AS x
  WHERE x.session_start >= k.window_start AND x.session_start < k.window_end
    AND CASE k.dimension
          WHEN 'global' THEN TRUE
          WHEN 'page_path' THEN coalesce(x.entry_page, '(none)') = k.dimension_value
          WHEN 'country' THEN coalesce(x.country, '(none)') = k.dimension_value
          WHEN 'device_type' THEN coalesce(x.device_type, '(none)') = k.dimension_value
          ELSE FALSE
        END
) AS s
CROSS JOIN LATERAL (
  SELECT count(*) AS late_events
  FROM late_events AS x
  WHERE x.event_time >= k.window_start AND x.event_time < k.window_end
    AND x.job = 'sessionize' AND x.reason = 'late'
    AND CASE k.dimension
          WHEN 'global' THEN TRUE
          WHEN 'page_path' THEN coalesce(x.page_path, '(none)') = k.dimension_value
          WHEN 'country' THEN coalesce(x.country, '(none)') = k.dimension_value
          WHEN 'device_type' THEN coalesce(x.device_type, '(none)') = k.dimension_value
          ELSE FALSE
        END
) AS l;
