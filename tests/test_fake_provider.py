"""The fake provider is the ground truth for gateway tests, so its wire shapes are pinned here."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.provider import FakeProvider, Fault

KEY = "sk-fake-upstream"
OPENAI_AUTH = {"Authorization": f"Bearer {KEY}"}
ANTHROPIC_AUTH = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
GEMINI_AUTH = {"x-goog-api-key": KEY}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello there world"}]}


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProvider]:
    with FakeProvider(api_key=KEY) as fake:
        yield fake


@pytest.fixture(autouse=True)
def _reset(provider: FakeProvider) -> None:
    provider.reset()


@pytest.fixture(scope="module")
def client(provider: FakeProvider) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=provider.base_url, timeout=5) as c:
        yield c


def sse_events(text: str) -> list[tuple[str | None, str]]:
    """Splits an SSE body into (event name, data) pairs."""
    out: list[tuple[str | None, str]] = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data.append(line.removeprefix("data: "))
        out.append((name, "\n".join(data)))
    return out


def chat(client: httpx.Client, **extra: Any) -> httpx.Response:
    return client.post("/v1/chat/completions", json={**CHAT, **extra}, headers=OPENAI_AUTH)


# -- OpenAI -----------------------------------------------------------------------------------


def test_openai_chat_json(client: httpx.Client, provider: FakeProvider) -> None:
    r = chat(client)
    assert r.status_code == 200
    assert r.headers["x-request-id"].startswith("req_")
    assert r.headers["cf-ray"].endswith("-SJC") and len(r.headers["cf-ray"]) == 20
    body = r.json()
    assert body["id"].startswith("chatcmpl-") and body["object"] == "chat.completion"
    assert body["model"] == "gpt-4o-mini"
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "w0 w1 w2 w3 w4 w5 w6 w7",
        "refusal": None,
    }
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 8, "total_tokens": 11}
    (recorded,) = provider.calls("/v1/chat")
    assert recorded.method == "POST" and recorded.json == CHAT
    assert json.loads(recorded.raw) == CHAT
    assert recorded.headers["authorization"] == f"Bearer {KEY}"


def test_openai_chat_capped_and_content_parts(client: httpx.Client) -> None:
    messages = [
        {"role": "system", "content": "be terse"},
        {"role": "user", "content": [{"type": "text", "text": "a b c"}, {"type": "image_url"}]},
    ]
    body = chat(client, messages=messages, max_completion_tokens=3).json()
    assert body["choices"][0]["message"]["content"] == "w0 w1 w2"
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["prompt_tokens"] == 5 and body["usage"]["completion_tokens"] == 3
    long_body = chat(client, model="gpt-long-test").json()
    assert long_body["usage"]["completion_tokens"] == 40


def test_openai_chat_stream_with_usage(client: httpx.Client) -> None:
    r = chat(client, stream=True, stream_options={"include_usage": True}, max_tokens=5)
    assert r.headers["content-type"].startswith("text/event-stream")
    datas = [d for _, d in sse_events(r.text)]
    assert datas[-1] == "[DONE]"
    chunks = [json.loads(d) for d in datas[:-1]]
    content = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"]["content"] for c in content) == "w0 w1 w2 w3 w4"
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] == len(content) == 5
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)


def test_openai_stream_without_usage_and_keepalive(client: httpx.Client) -> None:
    for _ in range(3):  # several streams over the same pooled connection
        datas = [d for _, d in sse_events(chat(client, stream=True).text)]
        assert datas[-1] == "[DONE]"
        assert all("usage" not in json.loads(d) for d in datas[:-1])
        assert len(datas) == 8 + 2


def test_models_list(client: httpx.Client) -> None:
    body = client.get("/v1/models", headers=OPENAI_AUTH).json()
    assert body["object"] == "list"
    assert "gpt-4o-mini" in [m["id"] for m in body["data"]]


def test_images_and_speech(client: httpx.Client) -> None:
    img = client.post(
        "/v1/images/generations",
        json={"model": "gpt-image-1", "prompt": "cat", "n": 2, "size": "1024x1024"},
        headers=OPENAI_AUTH,
    ).json()
    urls = [d["url"] for d in img["data"]]
    assert [u.rsplit("/", 1)[1] for u in urls] == ["0.png", "1.png"]
    # The URLs are public files on the fake itself: real PNGs, no key needed.
    for url in urls:
        assert url.startswith(f"{str(client.base_url).rstrip('/')}/files/img/")
        file = httpx.get(url)
        assert file.status_code == 200 and file.headers["content-type"] == "image/png"
        assert file.content.startswith(b"\x89PNG\r\n\x1a\n")
    short, long = (
        client.post(
            "/v1/audio/speech",
            json={"model": "tts-1", "input": text, "voice": "alloy"},
            headers=OPENAI_AUTH,
        )
        for text in ("hi", "hello world")
    )
    assert short.headers["content-type"] == "audio/mpeg"
    assert len(long.content) > len(short.content) > 0


def test_openai_video_lifecycle(client: httpx.Client, provider: FakeProvider) -> None:
    created = client.post(
        "/v1/videos", json={"model": "sora-2", "prompt": "x", "seconds": "8"}, headers=OPENAI_AUTH
    ).json()
    assert created["id"].startswith("video_") and created["status"] == "queued"
    assert created["object"] == "video" and created["seconds"] == "8"
    statuses = [
        client.get(f"/v1/videos/{created['id']}", headers=OPENAI_AUTH).json()["status"]
        for _ in range(3)
    ]
    assert statuses == ["in_progress", "in_progress", "completed"]

    provider.job_outcome = "failed"
    provider.job_polls_until_done = 0
    vid = client.post("/v1/videos", json={"model": "sora-2", "prompt": "x"}, headers=OPENAI_AUTH)
    done = client.get(f"/v1/videos/{vid.json()['id']}", headers=OPENAI_AUTH).json()
    assert done["status"] == "failed" and set(done["error"]) == {"code", "message"}
    assert client.get("/v1/videos/video_nope", headers=OPENAI_AUTH).status_code == 404


# -- Anthropic --------------------------------------------------------------------------------

MESSAGES = {
    "model": "claude-sonnet-4",
    "max_tokens": 4,
    "system": "sys prompt",
    "messages": [{"role": "user", "content": [{"type": "text", "text": "one two three"}]}],
}


def test_anthropic_json(client: httpx.Client) -> None:
    r = client.post("/v1/messages", json=MESSAGES, headers=ANTHROPIC_AUTH)
    assert r.headers["request-id"] == r.headers["x-request-id"]
    body = r.json()
    assert body["id"].startswith("msg_") and body["type"] == "message"
    assert body["model"] == "claude-sonnet-4" and body["role"] == "assistant"
    assert body["content"] == [{"type": "text", "text": "w0 w1 w2 w3"}]
    assert body["stop_reason"] == "max_tokens"
    assert body["usage"] == {"input_tokens": 5, "output_tokens": 4}


def test_anthropic_stream(client: httpx.Client) -> None:
    r = client.post("/v1/messages", json={**MESSAGES, "stream": True}, headers=ANTHROPIC_AUTH)
    events = sse_events(r.text)
    names = [n for n, _ in events]
    assert names == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * 4,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    data = [json.loads(d) for _, d in events]
    assert all(d["type"] == n for (n, _), d in zip(events, data, strict=True))
    assert data[0]["message"]["usage"] == {"input_tokens": 5, "output_tokens": 1}
    assert "".join(d["delta"]["text"] for d in data[2:6]) == "w0 w1 w2 w3"
    assert data[-2]["delta"]["stop_reason"] == "max_tokens"
    assert data[-2]["usage"]["output_tokens"] == 4


# -- Gemini -----------------------------------------------------------------------------------

GEMINI = {
    "contents": [{"role": "user", "parts": [{"text": "hi there"}]}],
    "systemInstruction": {"parts": [{"text": "be nice"}]},
}


def test_gemini_json(client: httpx.Client) -> None:
    r = client.post(
        "/v1beta/models/gemini-2.5-flash:generateContent", json=GEMINI, headers=GEMINI_AUTH
    )
    body = r.json()
    cand = body["candidates"][0]
    assert cand["content"] == {"role": "model", "parts": [{"text": "w0 w1 w2 w3 w4 w5 w6 w7"}]}
    assert cand["finishReason"] == "STOP"
    assert body["usageMetadata"] == {
        "promptTokenCount": 4,
        "candidatesTokenCount": 8,
        "totalTokenCount": 12,
    }
    assert body["modelVersion"] == "gemini-2.5-flash"


def test_gemini_stream_with_query_key(client: httpx.Client) -> None:
    r = client.post(
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
        params={"alt": "sse", "key": KEY},
        json={**GEMINI, "generationConfig": {"maxOutputTokens": 3}},
    )
    chunks = [json.loads(d) for _, d in sse_events(r.text)]
    assert len(chunks) == 3
    assert [c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks] == [
        "w0",
        " w1",
        " w2",
    ]
    assert all("usageMetadata" not in c for c in chunks[:-1])
    assert chunks[-1]["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert chunks[-1]["usageMetadata"]["candidatesTokenCount"] == 3
    array = client.post(  # without alt=sse Gemini streams a single JSON array
        "/v1beta/models/g:streamGenerateContent", json=GEMINI, headers=GEMINI_AUTH
    ).json()
    assert len(array) == 8 and array[-1]["candidates"][0]["finishReason"] == "STOP"


# -- generic jobs -----------------------------------------------------------------------------


def submit_job(client: httpx.Client, kind: str, inputs: dict[str, Any]) -> str:
    r = client.post(
        "/jobs", json={"model": "m", "type": kind, "input": inputs}, headers=OPENAI_AUTH
    )
    assert r.status_code == 201 and r.json()["status"] == "queued"
    job_id: str = r.json()["id"]
    assert job_id.startswith("job_")
    return job_id


def poll(client: httpx.Client, job_id: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"/jobs/{job_id}", headers=OPENAI_AUTH).json()
    return body


def test_job_succeeds_after_polls(client: httpx.Client) -> None:
    job_id = submit_job(client, "image", {"prompt": "x", "n": 3})
    first, second, third = (poll(client, job_id) for _ in range(3))
    assert first["status"] == second["status"] == "processing"
    assert 0 <= first["progress"] < second["progress"] <= 100
    assert third["status"] == "succeeded" and third["units"] == 3
    assert len(third["result"]["urls"]) == 3
    assert poll(client, job_id)["status"] == "succeeded"  # terminal state is sticky


@pytest.mark.parametrize(
    ("kind", "inputs", "units"),
    [
        ("video", {"seconds": 6}, 6),
        ("video", {}, 4),
        ("audio", {"text": "x" * 2500}, 3),
        ("audio", {}, 1),
        ("image", {}, 1),
    ],
)
def test_job_units(
    client: httpx.Client, provider: FakeProvider, kind: str, inputs: dict[str, Any], units: int
) -> None:
    provider.job_polls_until_done = 0
    assert poll(client, submit_job(client, kind, inputs))["units"] == units


def test_job_failures(client: httpx.Client, provider: FakeProvider) -> None:
    provider.job_polls_until_done = 0
    forced = poll(client, submit_job(client, "image", {"fake_outcome": "failed"}))
    assert forced["status"] == "failed" and forced["error"]["code"] == "content_policy"
    provider.job_outcome = "failed"
    assert poll(client, submit_job(client, "audio", {"text": "hi"}))["status"] == "failed"
    assert client.get("/jobs/job_missing", headers=OPENAI_AUTH).status_code == 404


def _create(client: httpx.Client, key: str | None, reference: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"model": "m", "type": "video", "input": {"seconds": 2}}
    if reference is not None:
        body["client_reference"] = reference
    headers = {**OPENAI_AUTH, **({"Idempotency-Key": key} if key else {})}
    return client.post("/jobs", json=body, headers=headers)


def test_job_idempotency_key_replays_the_first_job(
    client: httpx.Client, provider: FakeProvider
) -> None:
    first = _create(client, "task-1-1", "task-1-1")
    again = _create(client, "task-1-1", "task-1-1")
    other = _create(client, "task-1-2")
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"] != other.json()["id"]
    assert [j.id for j in provider.live_jobs()] == [first.json()["id"], other.json()["id"]]
    assert _create(client, None).json()["id"] != _create(client, None).json()["id"]


def test_job_keys_ignored_lookup_by_reference_and_cancel(
    client: httpx.Client, provider: FakeProvider
) -> None:
    provider.honour_idempotency_keys = False
    ids = [_create(client, "task-2-1", "task-2-1").json()["id"] for _ in range(2)]
    assert len(set(ids)) == 2
    found = client.get("/jobs", params={"client_reference": "task-2-1"}, headers=OPENAI_AUTH)
    assert [j["id"] for j in found.json()["data"]] == ids
    assert {j["status"] for j in found.json()["data"]} == {"processing"}
    none = client.get("/jobs", params={"client_reference": "task-9-1"}, headers=OPENAI_AUTH)
    assert none.json()["data"] == []
    assert client.get("/jobs", headers=OPENAI_AUTH).status_code == 400

    canceled = client.post(f"/jobs/{ids[1]}/cancel", headers=OPENAI_AUTH)
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    assert poll(client, ids[1])["status"] == "canceled"
    assert [j.id for j in provider.live_jobs()] == ids[:1]
    assert [poll(client, ids[0])["status"] for _ in range(3)][-1] == "succeeded"
    assert client.post(f"/jobs/{ids[0]}/cancel", headers=OPENAI_AUTH).status_code == 409
    assert client.post("/jobs/job_missing/cancel", headers=OPENAI_AUTH).status_code == 404


def test_video_idempotency_key_and_delete(client: httpx.Client, provider: FakeProvider) -> None:
    headers = {**OPENAI_AUTH, "Idempotency-Key": "task-3-1"}
    body = {"model": "sora-2", "prompt": "x"}
    first = client.post("/v1/videos", json=body, headers=headers).json()["id"]
    replay = client.post("/v1/videos", json=body, headers=headers)
    assert replay.json()["id"] == first and replay.headers["idempotent-replayed"] == "true"
    deleted = client.delete(f"/v1/videos/{first}", headers=OPENAI_AUTH)
    assert deleted.json() == {"id": first, "object": "video.deleted", "deleted": True}
    assert client.get(f"/v1/videos/{first}", headers=OPENAI_AUTH).status_code == 404
    assert provider.live_jobs() == []


def test_slow_answer_fault_creates_the_job_then_holds_the_answer(
    client: httpx.Client, provider: FakeProvider
) -> None:
    provider.add_fault(Fault("slow_answer", path="/jobs", method="POST", delay_s=1.0))
    with pytest.raises(httpx.ReadTimeout):
        client.post(
            "/jobs",
            json={"type": "image", "input": {}},
            headers={**OPENAI_AUTH, "Idempotency-Key": "task-4-1"},
            timeout=0.2,
        )
    assert len(provider.live_jobs()) == 1  # created before the answer was lost
    assert provider.answers_held == 1
    assert client.get("/jobs/" + provider.jobs()[0].id, headers=OPENAI_AUTH).status_code == 200


# -- auth, routing, bad input -----------------------------------------------------------------


def test_auth_failures(client: httpx.Client) -> None:
    bad = client.post("/v1/chat/completions", json=CHAT, headers={"Authorization": "x"})
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "invalid_api_key"
    no_version = client.post("/v1/messages", json=MESSAGES, headers={"x-api-key": KEY})
    assert no_version.status_code == 401
    assert no_version.json() == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "Invalid or missing API key."},
    }
    gem = client.post("/v1beta/models/g:generateContent", json=GEMINI, params={"key": "nope"})
    assert gem.status_code == 401 and gem.json()["error"]["status"] == "UNAUTHENTICATED"
    job = client.post("/jobs", json={"type": "image", "input": {}})
    assert job.status_code == 401
    assert bad.headers["x-request-id"].startswith("req_")


def test_unknown_route_and_bad_json(client: httpx.Client) -> None:
    missing = client.get("/v1/nope", headers=OPENAI_AUTH)
    assert missing.status_code == 404 and "error" in missing.json()
    bad = client.post(
        "/v1/messages",
        content=b"{not json",
        headers={**ANTHROPIC_AUTH, "content-type": "application/json"},
    )
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"


# -- faults -----------------------------------------------------------------------------------


def test_latency_fault(client: httpx.Client, provider: FakeProvider) -> None:
    provider.add_fault(Fault("latency", delay_s=0.2))
    started = time.perf_counter()
    assert chat(client).status_code == 200
    assert time.perf_counter() - started >= 0.2


def test_429_with_retry_after_then_recovers(client: httpx.Client, provider: FakeProvider) -> None:
    provider.add_fault(Fault("status", status=429, retry_after="7"))
    r = chat(client)
    assert r.status_code == 429 and r.headers["retry-after"] == "7"
    assert r.json()["error"]["code"] == "rate_limit_exceeded"
    assert chat(client).status_code == 200  # times=1 expired


@pytest.mark.parametrize("status", [500, 503])
def test_server_error_faults(client: httpx.Client, provider: FakeProvider, status: int) -> None:
    provider.add_fault(Fault("status", status=status, path="/v1/messages", times=None))
    for _ in range(2):
        r = client.post("/v1/messages", json=MESSAGES, headers=ANTHROPIC_AUTH)
        assert r.status_code == status and r.json()["type"] == "error"
        assert "retry-after" not in r.headers
    assert chat(client).status_code == 200  # path did not match


def test_status_fault_custom_body_and_gemini_shape(
    client: httpx.Client, provider: FakeProvider
) -> None:
    provider.add_fault(Fault("status", status=400, body={"custom": True}))
    provider.add_fault(Fault("status", status=503))
    assert chat(client).json() == {"custom": True}
    r = client.post("/v1beta/models/g:generateContent", json=GEMINI, headers=GEMINI_AUTH)
    assert r.json()["error"] == {
        "code": 503,
        "message": "injected upstream error 503",
        "status": "UNAVAILABLE",
    }


def test_drop_fault(client: httpx.Client, provider: FakeProvider) -> None:
    provider.add_fault(Fault("drop"))
    with pytest.raises(httpx.TransportError):
        chat(client)
    assert len(provider.calls("/v1/chat/completions")) == 1  # recorded even though dropped
    assert chat(client).status_code == 200


def test_drop_mid_stream(client: httpx.Client, provider: FakeProvider) -> None:
    provider.add_fault(Fault("drop_mid_stream", after_chunks=3))
    lines: list[str] = []
    with (
        pytest.raises(httpx.TransportError),
        client.stream(
            "POST", "/v1/chat/completions", json={**CHAT, "stream": True}, headers=OPENAI_AUTH
        ) as r,
    ):
        assert r.status_code == 200
        lines.extend(line for line in r.iter_lines() if line)
    assert len(lines) == 3
    assert "data: [DONE]" not in lines
    assert chat(client, stream=True).text.endswith("data: [DONE]\n\n")


def test_drop_mid_body_non_stream(client: httpx.Client, provider: FakeProvider) -> None:
    provider.add_fault(Fault("drop_mid_stream", path="/v1/messages"))
    with pytest.raises(httpx.TransportError):
        client.post("/v1/messages", json=MESSAGES, headers=ANTHROPIC_AUTH)


def test_malformed_fault(client: httpx.Client, provider: FakeProvider) -> None:
    provider.add_fault(Fault("malformed"))
    r = chat(client)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    with pytest.raises(ValueError):
        r.json()


def test_faults_apply_in_order_and_by_path(client: httpx.Client, provider: FakeProvider) -> None:
    with pytest.raises(ValueError):
        Fault("explode")  # type: ignore[arg-type]
    provider.add_fault(Fault("status", status=500, path="/jobs", times=2))
    provider.add_fault(Fault("status", status=502))
    provider.add_fault(Fault("status", status=504))
    assert [chat(client).status_code for _ in range(3)] == [502, 504, 200]
    job = {"type": "image", "input": {}}
    codes = [client.post("/jobs", json=job, headers=OPENAI_AUTH).status_code for _ in range(3)]
    assert codes == [500, 500, 201]


def test_stop_and_restart_context_manager() -> None:
    with FakeProvider() as fake:
        url = fake.base_url
        r = httpx.get(f"{url}/v1/models", headers={"Authorization": "Bearer sk-fake-upstream"})
        assert r.status_code == 200
    with pytest.raises(RuntimeError):
        _ = fake.base_url
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/v1/models")
