"""Tests of issue 8: the local Flink cluster, metrics, docker/ and deploy/k8s."""
