"""The callback activity: one delivery attempt per call, recorded, safe to repeat.

It owns an HTTP client of its own, built once per worker: callback receivers are untrusted
and must not share pools, timeouts or proxy settings with the upstream-provider client.
"""

from __future__ import annotations

from temporalio import activity

from activities.deps import ActivityDeps
from config.settings import ConfigError, Settings
from domain.callbacks.delivery import CallbackConfig, build_callback_client, deliver
from domain.crypto import SecretBox
from workflows.callbacks import DELIVER, CallbackActivityDefs, DeliveryRequest, DeliveryResult


def callback_config(settings: Settings) -> CallbackConfig:
    if settings.tenant_egress_allow_private and settings.env == "production":
        # The escape hatch turns the worker into an SSRF proxy; refuse to start with it.
        raise ConfigError("OXINF_TENANT_EGRESS_ALLOW_PRIVATE must not be set in production")
    return CallbackConfig(
        egress=settings.tenant_egress,
        connect_timeout_s=settings.callback_connect_timeout_s,
        read_timeout_s=settings.callback_read_timeout_s,
        max_response_bytes=settings.callback_max_response_bytes,
    )


class CallbackActivities(CallbackActivityDefs):
    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps
        self._config = callback_config(deps.settings)
        self._box = SecretBox(deps.settings.encryption_key_list)
        self._http = build_callback_client(self._config)

    async def aclose(self) -> None:
        await self._http.aclose()

    @activity.defn(name=DELIVER)
    async def deliver(self, request: DeliveryRequest) -> DeliveryResult:
        job = request.job
        result = await deliver(
            self._http, self._deps.sessions, self._box, self._config, job, request.attempt
        )
        activity.logger.info(
            "callback attempt",
            extra={
                "task_id": str(job.task_id),
                "event": job.event,
                "attempt": request.attempt,
                "outcome": result.outcome,
                "http_status": result.http_status,
                "decision": result.decision,
            },
        )
        return DeliveryResult(
            decision=result.decision,
            outcome=result.outcome,
            http_status=result.http_status,
            error=result.error,
        )
