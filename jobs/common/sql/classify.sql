-- Arrival classification shared by the jobs (SEMANTICS.md: Time, Validity and duplicates). Rendered by
-- jobs/common/decode.py `classify_statements`; {source} is a view of valid events (with `ts`, the Kafka
-- coordinates and the time attribute `event_time` carrying the decode step's watermark, to which future
-- timestamps do not contribute). All of them move the watermark; only those where {relevant} holds are
-- classified and go on.
--
-- Every event is classified on arrival, from the input log alone, so a replay after any restore reproduces
-- it exactly (README "What sessionize computes"). The watermark at arrival of an event is the greatest
-- event time of the valid, non-future events before it in its Kafka partition, minus the out-of-orderness
-- bound ({out_of_orderness_ms} ms): io.uxstream.udf.PartitionWatermark keeps that running maximum in the
-- keyed state of an OVER aggregate per partition, checkpointed with the source offsets. Flink's runtime
-- watermark is not checkpointed (NULL after a restore) and never runs ahead of it while every partition
-- delivers (it is the minimum over partitions of the same maximum); it counts only when it is ahead, which
-- happens once a partition was idle for the idle timeout and the others moved it: then an event of that
-- partition behind it is late too, so that no window ever drops an event silently.
-- Future events (more than max_future_skew ahead of the broker receive time) never move either watermark.
--
-- Erased users (README "Privacy"): is_erased is TRUE for an event whose user key's pseudonym, under any key
-- of the ring, is on the erased-pseudonym list (io.uxstream.udf.ErasedUser, reloaded while the job runs; it
-- counts them: uxstream.erased_events). `on_time` and `ledger` drop those events, so they reach no ledger row, no
-- dedup or window state, no session or funnel state and no table. They still move the partition watermark
-- (whose state holds one number per partition): the classification of everyone else's events stays a
-- function of the input log alone, whatever was erased when. The flag is computed below the partition
-- watermark's OVER aggregate, so the lookup runs once per event (above it, the planner would copy it into the
-- Calc of each branch: the ledger and the on-time events).
CREATE TEMPORARY VIEW arrived AS
SELECT
  *,
  {user_key} AS user_key,
  {erased} AS is_erased,
  event_time > kafka_timestamp + {max_future_skew} AS is_future,
  epoch_ms(CURRENT_WATERMARK(event_time)) AS runtime_watermark_ms,
  PROCTIME() AS arrival
FROM {source};

-- acts_bot: the behavioural bot rule (README "Bots"; io.uxstream.udf.BotBehaviour), decided in the same OVER
-- aggregate (same window: one operator, in partition order) for every valid event that is neither future
-- nor of an erased user; it is FALSE when UXSTREAM_BOT_PAGE_VIEWS_PER_MINUTE is 0. A job's own
-- aggregates over the same window follow (the funnels job's pair_least_ts).
CREATE TEMPORARY VIEW watermarked AS
SELECT
  *,
  partition_watermark(ts, is_future, CAST({out_of_orderness_ms} AS BIGINT)) OVER (
    PARTITION BY kafka_partition ORDER BY arrival ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
  ) AS partition_watermark_ms,
  {acts_bot} AS acts_bot{partition_aggregates}
FROM arrived;

-- watermark_ms: the watermark at arrival (NULL before the partition's first event): {watermark_ms} is the
-- greater of partition_watermark_ms and runtime_watermark_ms, either when the other is NULL (written so that
-- no part of it reads runtime_watermark_ms alone: the planner computed such a part ahead of the OVER
-- aggregate, in a Calc of its own that copied every column of every event, since it reads a
-- non-deterministic column). is_late: at or below it; is_bot: a bot by its user agent (agent_bot, the
-- decode step's enrichment) or by its behaviour (acts_bot). Only events where {relevant} holds and whose
-- user is not erased are classified.
--
-- `on_time` (neither future nor late; no is_late column: a constant column there is one more Calc, after
-- the dedup) and `ledger` (late and future arrivals) each compute these straight
-- over `watermarked`, with their own condition: a view of the classified events that both read would be
-- planned as a node of its own between the OVER aggregate and the two branches, a Calc that deep-copies
-- every string column of every event once more (NOTES.md, issue 17).
CREATE TEMPORARY VIEW on_time AS
SELECT
  *,
  TO_TIMESTAMP_LTZ(watermark_ms, 3) AS watermark_at_arrival,
  agent_bot OR acts_bot AS is_bot
FROM (
  SELECT *, {watermark_ms} AS watermark_ms
  FROM watermarked
  WHERE NOT is_erased AND ({relevant}) AND NOT is_future AND NOT COALESCE(ts <= {watermark_ms}, FALSE)
);

-- The late ledger: late and future arrivals, and the table the job writes them to (late_events; each job
-- counts them in its INSERT, jobs.common.counters.ledger_counters).
-- Its columns beside `on_time`'s: reason, lateness_ms (NULL for a future event) and user_pseudonym (the
-- pseudonym of user_key, what late_events.user_key stores so that erasure reaches the ledger).
CREATE TEMPORARY VIEW ledger AS
SELECT
  *,
  {pseudonym} AS user_pseudonym,
  CASE WHEN is_future THEN 'future_timestamp' ELSE 'late' END AS reason,
  CASE WHEN is_future THEN CAST(NULL AS BIGINT) ELSE watermark_ms - ts END AS lateness_ms
FROM (
  SELECT
    *,
    TO_TIMESTAMP_LTZ(watermark_ms, 3) AS watermark_at_arrival,
    agent_bot OR acts_bot AS is_bot,
    NOT is_future AND COALESCE(ts <= watermark_ms, FALSE) AS is_late
  FROM (
    SELECT *, {watermark_ms} AS watermark_ms
    FROM watermarked
    WHERE NOT is_erased AND ({relevant}) AND (is_future OR COALESCE(ts <= {watermark_ms}, FALSE))
  )
);

CREATE TEMPORARY TABLE late_sink (
  job STRING NOT NULL,
  event_id STRING NOT NULL,
  event_time TIMESTAMP(3) NOT NULL,
  received_at TIMESTAMP(3),
  `watermark` TIMESTAMP(3),
  lateness_ms BIGINT,
  reason STRING,
  page_path STRING,
  country STRING,
  device_type STRING,
  source_partition INT,
  source_offset BIGINT,
  user_key STRING,
  PRIMARY KEY (job, event_id, event_time) NOT ENFORCED
) WITH (
  {late_sink_options}
);

-- occurrence: the occurrence number of the event's event_id among the on-time events (1 = first, n = the
-- n-th within the dedup memory), also counting the duplicates (uxstream.<duplicates_counter>.total) in the one
-- operator that sees each of them once (jobs/common/decode.py `dedup_sql`: per bucket of
-- event ids on the heap state backend, io.uxstream.udf.EventIds; per event_id on RocksDB,
-- io.uxstream.udf.OccurrenceCount).
CREATE TEMPORARY VIEW numbered AS
SELECT
  *,
  {dedup_call} OVER (
    PARTITION BY {dedup_key} ORDER BY arrival ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
  ) AS occurrence
FROM {dedup_source};
