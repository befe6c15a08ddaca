-- kpi_1m_full gains bot_events (V0011, README "Enrichment"): the view as V0002 defined it, the new column
-- appended last (CREATE OR REPLACE VIEW may only add columns at the end; the grants of V0007 stay). The
-- user sketch (V0010) stays out: it is merged over ranges (uxstream uniques), not read per window.
CREATE OR REPLACE VIEW kpi_1m_full AS
SELECT k.window_start, k.window_end, k.dimension, k.dimension_value,
       k.events, k.page_views, k.active_users,
       s.new_sessions,
       k.error_events, k.error_rate, k.conversions,
       k.lcp_p75, k.inp_p75, k.cls_p75,
       k.duplicates,
       l.late_events,
       k.revision,
       k.bot_events
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
