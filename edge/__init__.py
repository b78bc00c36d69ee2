"""What the two HTTP edges share: `api/` (the JSON API) and `web/` (the console) both reach
the process's resources and their unit of work through `edge.deps`, and answer errors with
the statuses in `edge.statuses`. Nothing here imports either edge."""
