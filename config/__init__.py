"""Process configuration and wiring shared by every entry point (API, worker, CLI, bench):
settings read from `OXINF_*`, the resources a process opens once (database, HTTP clients,
Temporal, the relay), logging and the per-request context that log lines carry."""
