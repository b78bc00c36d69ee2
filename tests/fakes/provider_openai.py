"""The fake's OpenAI flavour: chat completions (JSON and SSE), models, images, speech and
video jobs with their downloadable content."""

from __future__ import annotations

import time
import uuid
from typing import Any

from tests.fakes.provider_wire import (
    MODEL_IDS,
    VIDEO_CONTENT_CHUNKS,
    BaseHandler,
    Body,
    Job,
    data_event,
    fake_video_bytes,
    message_words,
    replayed,
    reply,
)


class OpenAIRoutes(BaseHandler):
    def _openai_chat(self, body: Body) -> None:
        model = str(body.get("model", ""))
        cap = body.get("max_completion_tokens", body.get("max_tokens"))
        pieces, capped = reply(model, cap)
        prompt = max(1, message_words(body.get("messages"), "content"))
        finish = "length" if capped else "stop"
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": len(pieces),
            "total_tokens": prompt + len(pieces),
        }
        ident, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if not body.get("stream"):
            message = {"role": "assistant", "content": "".join(pieces), "refusal": None}
            choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
            self._send_json(
                200,
                {
                    "id": ident,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [choice],
                    "usage": usage,
                },
            )
            return
        opts = body.get("stream_options")
        include_usage = isinstance(opts, dict) and opts.get("include_usage") is True

        def chunk(choices: list[Body], **extra: Any) -> bytes:
            obj: Body = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": choices,
            }
            if include_usage:
                obj["usage"] = None
            obj.update(extra)
            return data_event(obj)

        events: list[bytes] = []
        for i, piece in enumerate(pieces):
            delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
            events.append(chunk([{"index": 0, "delta": delta, "finish_reason": None}]))
        events.append(chunk([{"index": 0, "delta": {}, "finish_reason": finish}]))
        if include_usage:
            events.append(chunk([], usage=usage))
        events.append(b"data: [DONE]\n\n")
        self._send_sse(events)

    def _openai_models(self, body: Body) -> None:
        data = [
            {"id": m, "object": "model", "created": 1700000000, "owned_by": "fake"}
            for m in MODEL_IDS
        ]
        self._send_json(200, {"object": "list", "data": data})

    def _openai_images(self, body: Body) -> None:
        n = body.get("n", 1)
        count = n if isinstance(n, int) and n > 0 else 1
        data = [{"url": f"https://fake.example/img/{i}.png"} for i in range(count)]
        self._send_json(200, {"created": int(time.time()), "data": data})

    def _openai_speech(self, body: Body) -> None:
        text = str(body.get("input", ""))
        # Fake MP3: ID3 tag then 32 bytes per input character.
        size = 32 * len(text)
        audio = b"ID3\x04\x00" + (bytes(range(256)) * (size // 256 + 1))[:size]
        self._send_bytes(200, "audio/mpeg", audio)

    def _openai_video_create(self, body: Body) -> None:
        provider = self.server.provider
        outcome = body.get("fake_outcome", provider.job_outcome)
        job = Job(
            id=f"video_{uuid.uuid4().hex}",
            api="openai",
            model=str(body.get("model", "")),
            kind="video",
            polls_needed=provider.job_polls_until_done,
            outcome="failed" if outcome == "failed" else "succeeded",
            units=1,
            urls=[],
            seconds=str(body.get("seconds", "4")),
            idempotency_key=self._headers.get("idempotency-key"),
        )
        job, created = provider._add_job(job)
        self._send_json(200, self._video_view(job, "queued", 0), replayed(created))

    def _openai_video_get(self, job_id: str, body: Body) -> None:
        job = self.server.provider._poll_job(job_id, "openai")
        if job is None or job.canceled:
            self._error(404, f"Video {job_id} not found.")
            return
        if job.polls <= job.polls_needed:
            progress = min(99, 100 * job.polls // (job.polls_needed + 1))
            self._send_json(200, self._video_view(job, "in_progress", progress))
            return
        view = self._video_view(job, "completed" if job.outcome == "succeeded" else "failed", 100)
        if job.outcome == "failed":
            view["error"] = {"code": "moderation_blocked", "message": "Fake video job failed."}
        else:
            view["completed_at"] = job.created + 1
        self._send_json(200, view)

    def _openai_video_content(self, job_id: str, body: Body) -> None:
        """The finished video's bytes, in several writes (a real download arrives in pieces)."""
        provider = self.server.provider
        job = provider._peek_job(job_id, "openai")
        if job is None:
            self._error(404, f"Video {job_id} not found.")
            return
        if job.polls <= job.polls_needed or job.outcome != "succeeded":
            self._error(400, f"Video {job_id} is not completed.")
            return
        if provider.video_content_expired:
            self._error(404, f"The content of video {job_id} has expired.")
            return
        data = fake_video_bytes(job_id)
        chunked = provider.video_content_chunked
        if self._mid_stream is not None and not chunked:
            self._send_bytes(200, "video/mp4", data)  # half the promised bytes, then FIN
            return
        size = -(-len(data) // VIDEO_CONTENT_CHUNKS)
        pieces = [data[i : i + size] for i in range(0, len(data), size)]

        def frame(piece: bytes) -> bytes:
            return b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece

        try:
            head = self._head(200, "video/mp4", None if chunked else len(data))
            self.wfile.write(head + frame(pieces[0]))
            self.wfile.flush()
            if self._mid_stream is not None:  # chunked: one piece, then FIN without the end
                self._abort()
                return
            gate = provider.video_content_gate
            if gate is not None:
                gate.wait(timeout=10)
            for piece in pieces[1:]:
                self.wfile.write(frame(piece))
                self.wfile.flush()
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client hung up mid-download
            provider._count_video_abort()
            self.close_connection = True

    def _openai_video_delete(self, job_id: str, body: Body) -> None:
        """Deleting a video that is still rendering stops it (and its bill)."""
        job = self.server.provider._cancel_job(job_id, "openai")
        if job is None:
            self._error(404, f"Video {job_id} not found.")
            return
        self._send_json(200, {"id": job.id, "object": "video.deleted", "deleted": True})

    @staticmethod
    def _video_view(job: Job, status: str, progress: int) -> Body:
        return {
            "id": job.id,
            "object": "video",
            "status": status,
            "model": job.model,
            "seconds": job.seconds,
            "progress": progress,
            "created_at": job.created,
        }
