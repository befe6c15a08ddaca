-- anomaly recipe (SEMANTICS.md "Anomalies"). Rendered by job.py; {placeholders} come from AnomalySettings.
-- Sources: the finalized windows sessionize and funnels publish (read_committed, raw bytes: the Python
-- detector decodes the Confluent-framed Avro). No watermark: every series is one Kafka key, so its
-- windows arrive in window order from one partition, and the detector works in that order.

CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS to_utc AS 'io.uxstream.udf.ToUtc' LANGUAGE JAVA;

CREATE TEMPORARY TABLE kpi_source (
  kafka_key BYTES,
  payload BYTES
) WITH (
  {kpi_source_options}
);

CREATE TEMPORARY TABLE funnel_source (
  kafka_key BYTES,
  payload BYTES
) WITH (
  {funnel_source_options}
);

-- The anomalies table: upsert on the alert key, one write per lifecycle message.
CREATE TEMPORARY TABLE anomalies_sink (
  alert_id STRING NOT NULL,
  opened_window_start TIMESTAMP(3) NOT NULL,
  opened_at TIMESTAMP(3) NOT NULL,
  resolved_at TIMESTAMP(3),
  status STRING NOT NULL,
  source STRING NOT NULL,
  metric STRING NOT NULL,
  window_kind STRING NOT NULL,
  dimension STRING NOT NULL,
  dimension_value STRING NOT NULL,
  last_window_start TIMESTAMP(3) NOT NULL,
  last_window_end TIMESTAMP(3) NOT NULL,
  `value` DOUBLE,
  baseline DOUBLE NOT NULL,
  baseline_method STRING NOT NULL,
  mad DOUBLE NOT NULL,
  z_score DOUBLE NOT NULL,
  peak_z DOUBLE NOT NULL,
  threshold DOUBLE NOT NULL,
  severity STRING NOT NULL,
  anomalous_windows INT NOT NULL,
  peak_value DOUBLE,
  opened_baseline DOUBLE,
  opened_z DOUBLE,
  PRIMARY KEY (alert_id, opened_window_start) NOT ENFORCED
) WITH (
  {anomalies_options}
);

-- The alert topic: key = the series, value = a framed alert.v1 record, Kafka timestamp = the end of the
-- window the message is about (event time). Exactly-once: read it with isolation.level=read_committed.
CREATE TEMPORARY TABLE alerts_topic (
  kafka_key BYTES,
  payload BYTES,
  kafka_timestamp TIMESTAMP_LTZ(3) METADATA FROM 'timestamp'
) WITH (
  {alerts_options}
);
