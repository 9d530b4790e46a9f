"""The executor every job of the code location runs with unless it names its own.

In process by default: every step here waits on Cin7 Core (one shared API budget), PostgreSQL or Zoho, not on
this process's CPU, so a process per step (Dagster's default, `multiprocess`) only adds its start-up (a fresh
interpreter that loads the code location: seconds per step) and never makes a run faster. Each entity and each
table is still its own step, with its own logs, metadata and retries in the UI.

A run can still ask for a process per step from the launchpad:
`execution: {config: {multiprocess: {max_concurrent: 4}}}`.
"""

import dagster as dg

RUN_EXECUTOR_NAME = "in_process_or_multiprocess"

# Dagster's own default executor with the other default: the config selector is passed through unchanged, so
# the inner executor still validates `multiprocess`'s options (max_concurrent, retries, start_method ...).
run_executor = dg.multi_or_in_process_executor.configured(
    lambda config: config,
    name=RUN_EXECUTOR_NAME,
    config_schema=dg.Field(
        dg.Selector({
            "in_process": dg.Field(dg.Permissive(), default_value={}),
            "multiprocess": dg.Field(dg.Permissive(), default_value={}),
        }),
        default_value={"in_process": {}},
    ),
)
