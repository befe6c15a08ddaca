"""uxstream on a Flink cluster: the local standalone cluster, job submission, savepoints, the uid lint."""
