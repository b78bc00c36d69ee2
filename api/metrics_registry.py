"""In-process HTTP counters and a latency histogram, fed by the edge middleware.

Plain dicts touched only from the event loop thread: recording a request costs a few dict
operations, so it can sit on the relay's hot path.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

Labels = tuple[tuple[str, str], ...]


class Registry:
    """Counters and one histogram; plain dicts, touched only from the event loop thread."""

    def __init__(self) -> None:
        self.requests: dict[Labels, int] = {}
        self.latency_counts: dict[Labels, list[int]] = {}
        self.latency_sum: dict[Labels, float] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        labels: Labels = (("method", method), ("route", route), ("code", str(status)))
        self.requests[labels] = self.requests.get(labels, 0) + 1
        hist_labels: Labels = (("method", method), ("route", route))
        counts = self.latency_counts.get(hist_labels)
        if counts is None:
            counts = self.latency_counts[hist_labels] = [0] * (len(LATENCY_BUCKETS) + 1)
        for i, bound in enumerate(LATENCY_BUCKETS):
            if seconds <= bound:
                counts[i] += 1
                break
        else:
            counts[-1] += 1
        self.latency_sum[hist_labels] = self.latency_sum.get(hist_labels, 0.0) + seconds

    def lines(self) -> Iterable[str]:
        yield "# HELP oxinf_http_requests_total HTTP responses by method, route and code."
        yield "# TYPE oxinf_http_requests_total counter"
        for labels, n in sorted(self.requests.items()):
            yield sample("oxinf_http_requests_total", labels, n)
        name = "oxinf_http_request_duration_seconds"
        yield f"# HELP {name} Time to the end of the response (streams included)."
        yield f"# TYPE {name} histogram"
        for labels, counts in sorted(self.latency_counts.items()):
            running = 0
            for bound, n in zip((*LATENCY_BUCKETS, math.inf), counts, strict=True):
                running += n
                le = "+Inf" if bound == math.inf else repr(bound)
                yield sample(f"{name}_bucket", (*labels, ("le", le)), running)
            yield sample(f"{name}_sum", labels, self.latency_sum[labels])
            yield sample(f"{name}_count", labels, running)


REGISTRY = Registry()


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def sample(name: str, labels: Labels, value: int | float) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
    return f"{name}{{{inner}}} {value}" if inner else f"{name} {value}"
