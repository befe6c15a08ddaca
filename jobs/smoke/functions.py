"""Flink adapters for the smoke pipeline: a Python scalar UDF around logic.normalize_path."""

from __future__ import annotations

from pyflink.table import DataTypes
from pyflink.table.udf import udf

from jobs.smoke import logic

normalize_path = udf(logic.normalize_path, result_type=DataTypes.STRING())
