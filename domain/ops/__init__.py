"""Operator-only reads: request and task drill-downs, timelines, channel health, metrics."""
