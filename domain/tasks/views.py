"""The customer-facing shape of a task: no channels, upstream ids or internal errors."""

from __future__ import annotations

from typing import Any

from domain.pricing.cost import format_credits
from schema.tasks import Task


def task_view(task: Task, *, include_content: bool = False) -> dict[str, Any]:
    result = None
    if task.result is not None:
        result = {"urls": task.result.get("urls") or []}
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
