-- Smoke pipeline recipe. Placeholders are filled by job.py from typed settings.

-- Source: JSON page-view events on Kafka, read from the earliest offset (bounded: up to the end offsets
-- present at start). Event time with a 5 s bounded out-of-orderness watermark.
CREATE TEMPORARY TABLE smoke_source (
  event_id STRING NOT NULL,
  user_id STRING,
  page STRING,
  ts BIGINT,
  event_time AS TO_TIMESTAMP_LTZ(ts, 3),
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
) WITH (
  {source_options}
);

-- PostgreSQL table (created by migrations) written by upsert on event_id: a replay rewrites the same rows.
CREATE TEMPORARY TABLE smoke_pg_sink (
  event_id STRING NOT NULL,
  user_id STRING,
  path STRING,
  event_time TIMESTAMP(3),
  PRIMARY KEY (event_id) NOT ENFORCED
) WITH (
  {jdbc_options}
);

-- Kafka topic written in transactions committed on checkpoints (read it with read_committed).
CREATE TEMPORARY TABLE smoke_kafka_sink (
  event_id STRING NOT NULL,
  user_id STRING,
  path STRING,
  ts BIGINT
) WITH (
  {sink_options}
);
