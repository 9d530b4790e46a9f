"""Partitions shared by every per-instance asset: one static partition per configured Cin7 instance."""

from __future__ import annotations

import dagster as dg

from gp_pipelines.config import PlatformConfig


def instance_partitions(config: PlatformConfig) -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition(config.instance_keys)
