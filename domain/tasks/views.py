"""The customer-facing shape of a task: no channels, upstream ids or internal errors.

Result URLs are ones the customer can open. Results copied into the result store are shown
as short-lived signed URLs to `/v1/files/...` (fresh on every read). Otherwise, where the
gateway itself serves a result (speech stored on the task, or a video that only the channel's
key can fetch upstream) the task shows the gateway's download URL, `/v1/tasks/{id}/content`,
never the upstream's; other provider URLs are shown as they came.
"""

from __future__ import annotations

import uuid
from typing import Any

from domain.pricing.cost import format_credits
from domain.providers.media import media_adapter_for
from domain.results.signing import ResultSigner
from schema.tasks import TASK_TYPES, Task


def content_url(task_id: uuid.UUID, base_url: str | None = None, index: int = 0) -> str:
    """The gateway's download URL: absolute under `base_url`, else a path from the API root."""
    path = f"/v1/tasks/{task_id}/content" + (f"?index={index}" if index else "")
    return f"{base_url.rstrip('/')}{path}" if base_url else path


def stored_results(task: Task) -> list[dict[str, Any]]:
    """The task's results held in the result store, by index; empty when they are not (a
    task from before the store, a copy that gave up, or results retention deleted)."""
    if task.status != "succeeded":
        return []
    stored = (task.result or {}).get("stored")
    return [s for s in stored if isinstance(s, dict)] if isinstance(stored, list) else []


def held_upstream(task: Task) -> bool:
    """A succeeded task whose result only the channel's credentials can fetch upstream: it is
    downloaded through the gateway, and its stored (upstream) URLs are never shown."""
    if task.status != "succeeded" or task.provider is None or task.type not in TASK_TYPES:
        return False
    try:
        adapter = media_adapter_for(task.provider)
    except ValueError:
        return False
    return adapter.content_needs_channel(task.type)  # type: ignore[arg-type]


def stored_bytes(task: Task) -> bool:
    """A succeeded task whose result bytes are stored on the task itself (speech)."""
    return task.status == "succeeded" and bool((task.result or {}).get("content_b64"))


def results_deleted(task: Task) -> bool:
    """Retention removed the task's stored results (and what the task row held of them)."""
    return bool((task.result or {}).get("deleted_at"))


def served_by_gateway(task: Task) -> bool:
    return not results_deleted(task) and (stored_bytes(task) or held_upstream(task))


def result_urls(
    task: Task, base_url: str | None = None, signer: ResultSigner | None = None
) -> list[str]:
    stored = stored_results(task)
    if stored:
        if signer is None:
            return [content_url(task.id, base_url, i) for i in range(len(stored))]
        return [signer.url(base_url, task.id, i) for i in range(len(stored))]
    if served_by_gateway(task):
        return [content_url(task.id, base_url)]
    return list((task.result or {}).get("urls") or [])


def task_view(
    task: Task,
    *,
    include_content: bool = False,
    base_url: str | None = None,
    signer: ResultSigner | None = None,
) -> dict[str, Any]:
    """`base_url` makes the gateway's download URL absolute (the API's public base URL);
    `signer` turns stored results into signed `/v1/files/...` URLs."""
    result: dict[str, Any] | None = None
    if task.result is not None:
        result = {"urls": result_urls(task, base_url, signer)}
        if stored_results(task) or served_by_gateway(task):
            result["content_url"] = content_url(task.id, base_url)
        if task.result.get("content_type"):
            result["content_type"] = task.result["content_type"]
        if include_content and task.result.get("content_b64"):
            result["content_b64"] = task.result["content_b64"]
    return {
        "id": str(task.id),
        "object": "task",
        "type": task.type,
        "model": task.model,
        "status": task.status,
        "progress": task.progress,
        "input": task.input,
        "result": result,
        "error": task.error,
        "units": task.units,
        "credits_estimated": format_credits(task.estimate_micros),
        "credits_charged": format_credits(task.charged_micros),
        "credits_refunded": format_credits(task.refunded_micros),
        "estimate_micros": task.estimate_micros,
        "charged_micros": task.charged_micros,
        "refunded_micros": task.refunded_micros,
        "callback_url": task.callback_url,
        "created_at": task.created_at.isoformat() if task.created_at else None,
        "finished_at": task.finished_at.isoformat() if task.finished_at else None,
    }
