-- funnels recipe (SEMANTICS.md: Time, Validity and duplicates, Funnels). Rendered by job.py; {placeholders}
-- come from FunnelsSettings and the funnel definitions. The decode step (jobs/common/decode.py) has already
-- created `ux_events_decoded` (every record with its verdict) with the time attribute `event_time` and the
-- watermark "max event time - out-of-orderness", to which future timestamps do not contribute (as in
-- sessionize).

-- Instants go to PostgreSQL as UTC wall-clock TIMESTAMPs (see io.uxstream.udf.ToUtc).
CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS to_utc AS 'io.uxstream.udf.ToUtc' LANGUAGE JAVA;

-- 1. Valid events with the fields the job uses, and whether they can matter to a funnel (step and
--    exclusion event names; every event when a funnel is strict). Every valid event moves its partition's
--    watermark; only relevant ones are classified and go on.
--    Identity (README "Identity in funnels"): an event carrying both ids links its anonymous id to its user
--    id. Such an event is relevant too when its ts is at or below the least ts of the earlier arrivals of
--    its (anonymous_id, user_id) pair: the earliest link of each pair in event time reaches Python (and
--    any copy of it), not the thousands of later events of a logged-in user that carry the same two ids.
--    The running minimum (`pair_least_ts`, io.uxstream.udf.PairLeast) is computed in the partition
--    watermark's OVER aggregate (job.py passes it to the classification), so it sees the partition's
--    events in partition order at any parallelism (state: one number per pair, expiring with the dedup
--    TTL; none for an erased user's events).
CREATE TEMPORARY VIEW valid_events AS
SELECT
  {relevant_columns},
  decoded.is_bot AS agent_bot,
  {relevant} AS is_step,
  kafka_partition,
  kafka_offset,
  kafka_timestamp,
  event_time
FROM {decoded_view}
WHERE decoded.reason IS NULL;

-- 2./3. Classified on arrival like sessionize (jobs/common/sql/classify.sql, created by job.py over
--    `valid_events`, classifying the steps and the earliest links of their pairs):
--    `ledger` (future and late arrivals), `on_time`, and `numbered` (occurrence of each event_id in
--    arrival order; only first occurrences reach Python).

-- 4. Everything the job reads from Kafka leaves the JVM part as ONE stream (one Kafka source: a second
--    Table→DataStream conversion would read and decode the topic again): first occurrences of relevant
--    events for the Python state machine (user key, time, id, name, the attributes the definitions use),
--    late-ledger rows (packed as JSON) and dead letters (encoded by the decode step's own SQL), told apart
--    by `kind`; bots' events (is_bot, the decode step's enrichment) enter no funnel unless
--    UXSTREAM_EXCLUDE_BOTS is off (late ones are ledgered all the same). job.py turns it into a DataStream, feeds the events to Python and writes the other kinds
--    from it with SQL again.
--    Events go to Python keyed by device key (the identity stage), with their user id (NULL if none).
CREATE TEMPORARY VIEW routed AS
SELECT 'event' AS kind, {device_key} AS device_key, ts, event_id, event_name{attribute_columns},
  CAST(NULL AS STRING) AS late_row, CAST(NULL AS BYTES) AS dlq_key, CAST(NULL AS BYTES) AS dlq_value,
  CAST(0 AS BIGINT) AS dlq_ts, NULLIF(user_id, '') AS user_id
FROM numbered
WHERE occurrence = 1{humans_only}
UNION ALL
SELECT 'late', '', CAST(0 AS BIGINT), event_id, event_name{attribute_nulls},
  JSON_OBJECT(
    'event_time' VALUE ts,
    'received_at' VALUE received_at,
    'watermark' VALUE watermark_ms,
    'lateness_ms' VALUE lateness_ms,
    'reason' VALUE reason,
    'page_path' VALUE page_path,
    'country' VALUE country,
    'device_type' VALUE device_type,
    'partition' VALUE kafka_partition,
    'offset' VALUE kafka_offset,
    'user_key' VALUE user_pseudonym
    NULL ON NULL),
  CAST(NULL AS BYTES), CAST(NULL AS BYTES), CAST(0 AS BIGINT), CAST(NULL AS STRING)
FROM ledger
UNION ALL
SELECT 'dlq', '', CAST(0 AS BIGINT), CAST(NULL AS STRING), CAST(NULL AS STRING){attribute_nulls},
  CAST(NULL AS STRING), d.kafka_key, d.dead_letter, epoch_ms(d.kafka_timestamp),
  CAST(NULL AS STRING)
FROM (
{dlq_select}
) AS d (kafka_key, dead_letter, kafka_timestamp);

-- 5. Sinks (late_sink, the late ledger, is created with the classification: jobs/common/sql/classify.sql).
CREATE TEMPORARY TABLE attempts_sink (
  attempt_id STRING NOT NULL,
  funnel STRING,
  user_key STRING,
  entered_at TIMESTAMP(3) NOT NULL,
  ended_at TIMESTAMP(3),
  status STRING,
  furthest_step INT,
  steps INT,
  step_times STRING,
  time_to_convert_ms BIGINT,
  breakdown STRING,
  PRIMARY KEY (attempt_id, entered_at) NOT ENFORCED
) WITH (
  {attempts_options}
);

CREATE TEMPORARY TABLE windows_sink (
  funnel STRING NOT NULL,
  window_start TIMESTAMP(3) NOT NULL,
  window_end TIMESTAMP(3),
  dimension STRING NOT NULL,
  dimension_value STRING NOT NULL,
  steps INT,
  entered BIGINT,
  converted BIGINT,
  dropped BIGINT,
  excluded BIGINT,
  conversion_rate DOUBLE,
  median_time_to_convert_ms DOUBLE,
  revision INT,
  PRIMARY KEY (funnel, window_start, dimension, dimension_value) NOT ENFORCED
) WITH (
  {windows_options}
);

CREATE TEMPORARY TABLE window_steps_sink (
  funnel STRING NOT NULL,
  window_start TIMESTAMP(3) NOT NULL,
  window_end TIMESTAMP(3),
  dimension STRING NOT NULL,
  dimension_value STRING NOT NULL,
  step INT NOT NULL,
  step_name STRING,
  reached BIGINT,
  conversion_from_previous DOUBLE,
  drop_off BIGINT,
  PRIMARY KEY (funnel, window_start, dimension, dimension_value, step) NOT ENFORCED
) WITH (
  {window_steps_options}
);

-- ux.funnel: key funnel|dimension|dimension_value, value a framed funnel_window record, Kafka timestamp =
-- window end (no processing time anywhere). Written in transactions committed on checkpoints.
CREATE TEMPORARY TABLE funnel_topic (
  kafka_key BYTES,
  payload BYTES,
  kafka_timestamp TIMESTAMP_LTZ(3) METADATA FROM 'timestamp'
) WITH (
  {funnel_topic_options}
);
