"""The scheduled audit: read the whole account, run every check, store and report the findings.

`run.run_audit` / `run.store_audit` are what the audit function, the CLI and the local runtime
call; `report` renders the JSON, CSV and table outputs.
"""
