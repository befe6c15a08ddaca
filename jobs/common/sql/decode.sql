-- Decode step of every uxstream job: raw ux.events records → decoded valid events + dead letters.
-- Rendered by jobs/common/decode.py (placeholders in braces). The per-event work runs in the JVM: the
-- functions below are Java UDFs from the uxstream-udf jar (jvm/udf), which is on pipeline.jars.

-- decode_ux_event(payload) → ROW<reason, detail, schema_id, every ux_event field>: same verdicts as
-- jobs.common.contract.decode. ux_event_time(payload) → TIMESTAMP_LTZ(3): ts of a valid event, else NULL.
-- encode_dead_letter(...) → the Confluent-framed dead_letter record (and counts it per reason).
CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS decode_ux_event AS 'io.uxstream.udf.DecodeUxEvent' LANGUAGE JAVA;
CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS ux_event_time AS 'io.uxstream.udf.UxEventTime' LANGUAGE JAVA;
CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS encode_dead_letter AS 'io.uxstream.udf.EncodeDeadLetter' LANGUAGE JAVA;
-- The jobs' own counters (metric group uxstream.<name>, counter total): count_when(name, flag) → TRUE, a WHERE
-- conjunct counting the rows whose flag is TRUE; occurrence_count(name) OVER (…) → COUNT(*) over the
-- window, counting the rows after the first of each key.
CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS count_when AS 'io.uxstream.udf.CountWhen' LANGUAGE JAVA;
CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS occurrence_count AS 'io.uxstream.udf.OccurrenceCount' LANGUAGE JAVA;
-- dedup_bucket(event_id) → INT and occurrence_number(name, event_id, ttl_ms) OVER (PARTITION BY dedup_bucket …) →
-- the occurrence numbers of occurrence_count over a window per event_id, kept per bucket of ids in a few arrays
-- (io.uxstream.udf.EventIds; the heap state backend's dedup, sql/classify.sql).
CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS dedup_bucket AS 'io.uxstream.udf.EventIds$Bucket' LANGUAGE JAVA;
CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS occurrence_number AS 'io.uxstream.udf.EventIds$Occurrence' LANGUAGE JAVA;
-- partition_watermark(ts, future, out_of_orderness_ms) OVER (PARTITION BY kafka_partition …) → the arrival
-- watermark of the row in epoch ms, from the partition's earlier rows (sql/classify.sql).
CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS partition_watermark AS 'io.uxstream.udf.PartitionWatermark' LANGUAGE JAVA;
-- bot_behaviour(user_key, future, erased, event_id, event_type, ts, per_minute, minutes, out_of_orderness_ms)
-- OVER (the same window) → whether the row's user key behaves like a bot (README "Bots"; sql/classify.sql).
CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS bot_behaviour AS 'io.uxstream.udf.BotBehaviour' LANGUAGE JAVA;
-- pair_least_ts(anonymous_id, user_id, ts) OVER (the same window) → the least ts of the row's id pair so far
-- in its partition (the funnels job's identity links; jobs/funnels/funnels.sql).
CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS pair_least_ts AS 'io.uxstream.udf.PairLeast' LANGUAGE JAVA;
-- erased_user(counter, user_key, jdbc_url, user, password_file, key_files, refresh_ms) → TRUE for an erased user's key
-- (the erased-pseudonym list, reloaded while the job runs); ux_pseudonym(user_key, key_files) → the pseudonym
-- the tables store (sql/classify.sql).
CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS erased_user AS 'io.uxstream.udf.ErasedUser' LANGUAGE JAVA;
CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS ux_pseudonym AS 'io.uxstream.udf.Pseudonym' LANGUAGE JAVA;
-- epoch_ms(instant) → BIGINT epoch milliseconds (io.uxstream.udf.EpochMs; the runtime watermark in classify.sql).
CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS epoch_ms AS 'io.uxstream.udf.EpochMs' LANGUAGE JAVA;

-- The topic as bytes: value and key uninterpreted (raw), Kafka coordinates as metadata. event_time is
-- computed here because Flink SQL only accepts a WATERMARK on a table's own columns: a job that needs
-- event time passes its watermark expression, rendered below. Invalid records have a NULL event_time,
-- so they never move the watermark.
CREATE TEMPORARY TABLE {source_table} (
  kafka_key BYTES,
  payload BYTES,
  kafka_topic STRING METADATA FROM 'topic' VIRTUAL,
  kafka_partition INT METADATA FROM 'partition' VIRTUAL,
  kafka_offset BIGINT METADATA FROM 'offset' VIRTUAL,
  kafka_timestamp TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  event_time AS ux_event_time(payload){watermark}
) WITH (
  {source_options}
);

-- Every record with its verdict (one decode per record: the UDF's per-thread memo makes the decode after
-- ux_event_time a comparison of the payload bytes).
CREATE TEMPORARY VIEW {decoded_view} AS
SELECT
  kafka_key,
  payload,
  kafka_topic,
  kafka_partition,
  kafka_offset,
  kafka_timestamp,
  event_time,
  decode_ux_event(payload) AS decoded
FROM {source_table};

-- Valid events, flattened: every field of the latest ux_event schema (enriched: device_type, os, browser
-- from user_agent and country from ip where the client sent none; jobs/common/enrichment.py), the writer
-- schema id, the Kafka coordinates, event_time (the time attribute when the source has a watermark) and
-- is_bot (from the user agent; never NULL).
CREATE TEMPORARY VIEW {valid_view} AS
SELECT
  {event_columns},
  decoded.schema_id AS schema_id,
  kafka_topic,
  kafka_partition,
  kafka_offset,
  kafka_timestamp,
  event_time,
  decoded.is_bot AS agent_bot
FROM {decoded_view}
WHERE decoded.reason IS NULL;

-- Invalid records with their reason code and detail (jobs.common.contract.REASONS).
CREATE TEMPORARY VIEW {invalid_view} AS
SELECT
  kafka_key,
  payload,
  kafka_topic,
  kafka_partition,
  kafka_offset,
  kafka_timestamp,
  decoded.reason AS reason,
  decoded.detail AS detail,
  decoded.schema_id AS schema_id
FROM {decoded_view}
WHERE decoded.reason IS NOT NULL;

-- Dead-letter topic: key = the original key, value = a framed dead_letter record, Kafka timestamp = the
-- source record's (no processing time anywhere). Written in transactions committed on checkpoints.
CREATE TEMPORARY TABLE {dlq_table} (
  kafka_key BYTES,
  dead_letter BYTES,
  kafka_timestamp TIMESTAMP_LTZ(3) METADATA FROM 'timestamp'
) WITH (
  {dlq_options}
);
