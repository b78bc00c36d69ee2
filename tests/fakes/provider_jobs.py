"""The fake's generic async media jobs API: create (idempotent), list by client reference,
poll, cancel."""

from __future__ import annotations

import math
import uuid

from tests.fakes.provider_wire import BaseHandler, Body, Job, opt_str, replayed


class JobsRoutes(BaseHandler):
    def _job_create(self, body: Body) -> None:
        provider = self.server.provider
        kind = body.get("type")
        inputs = body.get("input", {})
        if kind not in ("image", "video", "audio") or not isinstance(inputs, dict):
            self._error(400, "type must be image|video|audio and input an object.")
            return
        if kind == "image":
            units = int(inputs.get("n", 1))
        elif kind == "video":
            units = int(inputs.get("seconds", 4))
        else:
            units = max(1, math.ceil(len(str(inputs.get("text", ""))) / 1000))
        ident = f"job_{uuid.uuid4().hex}"
        ext = {"image": "png", "video": "mp4", "audio": "mp3"}[kind]
        count = units if kind == "image" else 1
        outcome = inputs.get("fake_outcome", provider.job_outcome)
        job = Job(
            id=ident,
            api="generic",
            model=str(body.get("model", "")),
            kind=kind,
            polls_needed=provider.job_polls_until_done,
            outcome="failed" if outcome == "failed" else "succeeded",
            units=units,
            urls=[f"https://fake.example/jobs/{ident}/{i}.{ext}" for i in range(count)],
            client_reference=opt_str(body.get("client_reference")),
            idempotency_key=self._headers.get("idempotency-key"),
        )
        job, created = provider._add_job(job)
        view = {"id": job.id, "status": "queued", "model": job.model, "type": job.kind,
                "client_reference": job.client_reference}  # fmt: skip
        self._send_json(201 if created else 200, view, replayed(created))

    def _job_list(self, body: Body) -> None:
        """`GET /jobs?client_reference=...`: the jobs created with that reference, oldest
        first, without advancing them (a lookup is not a poll)."""
        reference = self._query.get("client_reference")
        if not reference:
            self._error(400, "client_reference is required.")
            return
        jobs = self.server.provider._find_jobs("generic", reference)
        self._send_json(200, {"object": "list", "data": [self._job_view(j) for j in jobs]})

    def _job_cancel(self, job_id: str, body: Body) -> None:
        job = self.server.provider._cancel_job(job_id, "generic")
        if job is None:
            self._error(404, f"Job {job_id} not found.")
        elif not job.canceled:
            self._error(409, f"Job {job_id} already finished.")
        else:
            self._send_json(200, self._job_view(job))

    @staticmethod
    def _job_view(job: Job) -> Body:
        if job.canceled:
            status = "canceled"
        elif job.polls <= job.polls_needed:
            status = "processing"
        else:
            status = job.outcome
        return {"id": job.id, "status": status, "client_reference": job.client_reference}

    def _job_get(self, job_id: str, body: Body) -> None:
        job = self.server.provider._poll_job(job_id, "generic")
        if job is None:
            self._error(404, f"Job {job_id} not found.")
            return
        if job.canceled:
            self._send_json(200, self._job_view(job))
        elif job.polls <= job.polls_needed:
            progress = min(99, 100 * job.polls // (job.polls_needed + 1))
            self._send_json(200, {"id": job.id, "status": "processing", "progress": progress})
        elif job.outcome == "failed":
            error = {"code": "content_policy", "message": "Fake job rejected by content policy."}
            self._send_json(200, {"id": job.id, "status": "failed", "error": error})
        else:
            result = {"urls": job.urls}
            self._send_json(
                200, {"id": job.id, "status": "succeeded", "result": result, "units": job.units}
            )
