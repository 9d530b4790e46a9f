"""gp_pipelines: a Dagster platform for Cin7 Core merchants."""
