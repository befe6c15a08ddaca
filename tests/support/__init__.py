"""Helpers every end-to-end test shares (tests/README.md):

- `streams`: generate a stream (to Kafka and/or its ground truth), produce recorded lines, copy records;
- `kafka`: read a topic's committed records to its end, offsets, wait until a job consumed a topic;
- `db`: fresh migrated scratch databases, rows as comparable tuples, snapshots, oracle comparison;
- `jobs`: run a job bounded (asserting success), read a MiniCluster's log;
- `chaos`: runs with a fault after a checkpoint (held-back input), kills and restores;
- `prometheus`: the jobs' counters from Flink's Prometheus reporter;
- `sessionize`: the sessionize scenario (its stream, job command, oracle checks), shared with the
  cluster tests so both judge the job alike;
- `cluster`: the sessionize scenario's streams for the cluster tests;
- `anomaly`: synthetic KPI window streams with known anomalies;
- `durations`: summarise a `--tier-report` by module and tier.
"""
