"""A bounded schemathesis run over `/v1`, `/portal/v1`, `/enterprise/v1`, `/admin/v1` and
`/ops/v1`: no input may answer 5xx, and every error must be in the contract (issue 21).

Each operation gets a fresh world (`tests.fuzz.world`: an operator, a customer org with
members, a department, a cost center, a budget and keys, the demo models) on the test
database, and the app runs in-process with its own pool, as in production. Generation is
derandomized with a fixed seed, so CI runs the same cases every time; `KNOWN_BAD` adds the
inputs that once answered 500, so a regression cannot hide behind the seed. The OpenAPI
document itself tells the fuzzer where the edges are (`maxLength`, `maximum`, the no-NUL
`pattern` of `domain.inputs`), and its negative mode tries the other side of each.

`OXINF_FUZZ_EXAMPLES` (default 10) sets the examples per operation; with
`OXINF_FUZZ_SURVEY=1` nothing fails and every 5xx is collected instead. Each run writes
its figures (cases, statuses, 5xx, contract breaches) to `.oxinf/fuzz/last.json`.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from pydantic import SecretStr
from schemathesis.core import NOT_SET
from schemathesis.python import asgi as st_asgi
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from config.runtime import Resources
from config.settings import Settings
from tests.fakes.stripe import FakeStripe
from tests.fuzz.world import NOWHERE, FuzzWorld, build_world

PREFIXES = ("/v1/", "/portal/v1/", "/enterprise/v1/", "/admin/v1/", "/ops/v1/")
# `POST /webhooks/stripe` is outside these prefixes (it needs a Stripe signature; its own
# tests sign payloads). Logout is left out: it would end the session the rest relies on.
EXCLUDED = ("/portal/v1/auth/logout",)
REPORT = Path(".oxinf/fuzz/last.json")
SURVEY = bool(os.environ.get("OXINF_FUZZ_SURVEY"))
STATS: dict[str, Any] = {"cases": 0, "status": Counter(), "5xx": [], "contract": []}


def _document() -> dict[str, Any]:
    """The OpenAPI document only: routes do not depend on settings, and nothing connects."""
    raw = create_app(Settings(env="test")).openapi()
    raw["paths"] = {p: v for p, v in raw["paths"].items() if p.startswith(PREFIXES)}
    return raw


CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20260521,
        "suppress-health-check": ["all"],
        "generation": {
            "max-examples": int(os.environ.get("OXINF_FUZZ_EXAMPLES", "10")),
            "deterministic": True,
            "no-shrink": True,
            "database": "none",
        },
        # Stateful sequences need links between operations; the lock-order tests in
        # tests/enterprise/test_lock_order.py cover the one concurrency bug they found.
        "phases": {"stateful": {"enabled": False}},
    }
)
# Loaded at import rather than through `schemathesis.pytest.from_fixture`, whose lazy
# loader sets `Node._nodeid`, which pytest 9 no longer has; the app under test is handed to
# each call instead (`case.call(app=...)`).
schema = schemathesis.openapi.from_dict(_document(), config=CONFIG)
for _path in EXCLUDED:
    schema = schema.exclude(path=_path)


@pytest.fixture(scope="module")
def fake_stripe() -> Iterator[FakeStripe]:
    with FakeStripe() as fake:
        yield fake


@pytest.fixture(scope="module")
def fuzz_app(
    settings: Settings, dev_server_env: WorkflowEnvironment, fake_stripe: FakeStripe
) -> Iterator[Any]:
    """The app with its own resources, opened by its lifespan in schemathesis' event loop.
    Temporal is a real dev server (no worker: tasks stay pending), Stripe the local fake,
    and every provider URL a closed loopback port, so nothing fuzzed leaves the machine."""
    fuzz_settings = settings.model_copy(
        update={
            "temporal_address": dev_server_env.client.service_client.config.target_host,
            "shim_wait_s": 0.05,
            "provider_base_urls": dict.fromkeys(
                ("openai", "anthropic", "google", "openrouter", "ollama", "openai_compatible"),
                NOWHERE,
            ),
            "stripe_api_key": SecretStr(fake_stripe.api_key),
            "stripe_api_base": fake_stripe.base_url,
        }
    )
    try:
        yield create_app(fuzz_settings)
    finally:
        st_asgi.shutdown_lifespans()
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        REPORT.write_text(json.dumps({**STATS, "status": dict(STATS["status"])}, default=str))


@pytest.fixture
async def fuzz_world(resources: Resources, client: httpx.AsyncClient) -> AsyncIterator[FuzzWorld]:
    yield await build_world(resources, client)


def _prepare(case: Any, world: FuzzWorld) -> None:
    """Credentials by surface, ids that exist, and no egress. DELETEs keep their generated
    ids: deleting the seeded entities would turn the rest of an operation's run into 404s."""
    if case.method.upper() != "DELETE":
        for name in list(case.path_parameters or {}):
            if name in world.ids:
                case.path_parameters[name] = world.ids[name]
    for url_field in ("base_url", "issuer"):  # BYOK base URLs, SSO issuers
        if isinstance(case.body, dict) and isinstance(case.body.get(url_field), str):
            case.body[url_field] = NOWHERE
    case.headers = {**(case.headers or {}), **world.headers_for(case.path)}


def _anthropic_breach(body: Any) -> str | None:
    """`/v1/messages` answers in Anthropic's shape: `{"type": "error", "error": {type,
    message}, "request_id"}` (the `anthropic` SDK reads nothing else)."""
    err = body.get("error") if isinstance(body, dict) else None
    if body.get("type") != "error" or not isinstance(err, dict):
        return "not Anthropic's error shape"
    if not all(isinstance(err.get(k), str) for k in ("type", "message")):
        return "error lacks type or message"
    return None if isinstance(body.get("request_id"), str) else "no request_id"


def _contract_breach(response: Any, path: str = "") -> str | None:
    """Why an error response is not `{"error": {type, code, message, request_id}}`."""
    if response.status_code < 400:
        return None
    try:
        body = response.json()
    except ValueError:
        return "the body is not JSON"
    if path.startswith("/v1/messages") and response.status_code not in (404, 405, 413):
        return _anthropic_breach(body)
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return "no `error` object"
    missing = [
        k for k in ("type", "code", "message", "request_id") if not isinstance(err.get(k), str)
    ]
    if missing:
        return f"error lacks {', '.join(missing)}"
    if "param" in err and not isinstance(err["param"], str):
        return "error.param is not a string"
    return None


SHIMS = frozenset({"/v1/images/generations", "/v1/videos", "/v1/audio/speech"})


def _shim_still_working(response: Any, path: str) -> bool:
    """A shim's documented answer when its task outlasts `OXINF_SHIM_WAIT_S` (always here:
    no worker runs): 504 `timeout` naming the task, which the SDK must not retry."""
    if path not in SHIMS or response.status_code != 504:
        return False
    err = response.json().get("error") or {}
    retry = {k.lower(): v for k, v in response.headers.items()}.get("x-should-retry")
    retry = retry[0] if isinstance(retry, list) else retry  # schemathesis keeps header lists
    return err.get("code") == "timeout" and retry == "false"


def _check(case: Any, response: Any) -> None:
    STATS["cases"] += 1
    STATS["status"][response.status_code] += 1
    label = f"{case.method.upper()} {case.path}"
    breach = _contract_breach(response, case.path)
    if response.status_code >= 500 and not _shim_still_working(response, case.path):
        STATS["5xx"].append(
            {"op": label, "status": response.status_code, "body": case.body,
             "query": case.query, "path": case.path_parameters}
        )  # fmt: skip
    if breach:
        STATS["contract"].append({"op": label, "status": response.status_code, "why": breach})
    if SURVEY:
        return
    assert response.status_code < 500 or _shim_still_working(response, case.path), (
        f"{label}: {response.status_code} {response.text}"
    )
    assert breach is None, f"{label}: {response.status_code} {breach}: {response.text}"


@schema.parametrize()
def test_no_input_answers_5xx_or_leaves_the_error_contract(
    case: Any, fuzz_world: FuzzWorld, fuzz_app: Any
) -> None:
    _prepare(case, fuzz_world)
    _check(case, case.call(app=fuzz_app))


NUL = "a\x00b"
BIG64 = 2**63
CHAT = [{"role": "user", "content": "hi"}]
# (id, method, path, request): the schemathesis finds of issue 21, run every time.
KNOWN_BAD: list[tuple[str, str, str, dict[str, Any]]] = [
    ("key-scopes-null", "PATCH", "/portal/v1/api-keys/{key_id}", {"body": {"scopes": None}}),
    ("key-log-null", "PATCH", "/portal/v1/api-keys/{key_id}", {"body": {"log_content": None}}),
    ("key-allowlist-nul", "POST", "/portal/v1/api-keys",
     {"body": {"name": "k", "model_allowlist": [NUL]}}),
    ("policy-allowlist-nul", "PATCH", "/enterprise/v1/policies/{department_id}",
     {"body": {"model_allowlist": [NUL]}}),
    ("cost-center-code-nul", "POST", "/enterprise/v1/cost-centers", {"body": {"code": NUL}}),
    ("cost-center-name-nul", "PATCH", "/enterprise/v1/cost-centers/{cost_center_id}",
     {"body": {"name": NUL}}),
    ("user-search-nul", "GET", "/admin/v1/users", {"query": {"q": NUL}}),
    ("model-name-nul", "POST", "/admin/v1/models", {"body": {"name": NUL, "type": "chat"}}),
    ("chat-model-nul", "POST", "/v1/chat/completions", {"body": {"model": NUL, "messages": CHAT}}),
    ("chat-demo", "POST", "/v1/chat/completions",
     {"body": {"model": "demo-chat", "messages": CHAT}}),
    ("task-model-nul", "POST", "/v1/tasks",
     {"body": {"type": "image", "model": NUL, "input": {"prompt": "x"}}}),
    ("task-demo", "POST", "/v1/tasks",
     {"body": {"type": "image", "model": "demo-image", "input": {"prompt": "x"}}}),
    ("credit-reason-nul", "POST", "/admin/v1/orgs/{org_id}/credits",
     {"body": {"amount_micros": 1, "kind": "bonus", "reason": NUL}}),
    ("recharge-threshold-2^63", "PUT", "/portal/v1/credits/auto-recharge",
     {"body": {"enabled": False, "threshold_micros": BIG64}}),
    ("users-offset-2^63", "GET", "/admin/v1/users", {"query": {"offset": BIG64}}),
    ("orgs-offset-2^63", "GET", "/admin/v1/orgs", {"query": {"offset": BIG64}}),
    ("model-max-output-2^31", "POST", "/admin/v1/models",
     {"body": {"name": "m-big-out", "type": "chat", "max_output_tokens": 2**31}}),
    ("model-context-2^31", "PATCH", "/admin/v1/models/{name}",
     {"body": {"context_window": 2**31}}),
    ("model-price-2^63", "POST", "/admin/v1/models",
     {"body": {"name": "m-big-price", "type": "chat", "price": {"input_per_mtok": BIG64}}}),
    ("price-version-2^63", "POST", "/admin/v1/models/{name}/prices",
     {"body": {"output_per_mtok": BIG64}}),
    ("model-name-81", "POST", "/admin/v1/models", {"body": {"name": "m" * 81, "type": "chat"}}),
    ("grant-2^62-twice", "POST", "/admin/v1/orgs/{org_id}/credits",
     {"body": {"amount_micros": 2**62, "kind": "bonus", "reason": "fuzz"}, "repeat": 2}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "spec"), [row[1:] for row in KNOWN_BAD], ids=[row[0] for row in KNOWN_BAD]
)
def test_known_bad_inputs(
    method: str, path: str, spec: dict[str, Any], fuzz_world: FuzzWorld, fuzz_app: Any
) -> None:
    """The inputs that once answered 500, through the same harness and checks."""
    operation = schema[path][method]
    params = {name: fuzz_world.ids[name] for name in re.findall(r"\{(\w+)", path)}
    for _ in range(spec.get("repeat", 1)):
        case = operation.Case(
            path_parameters=params,
            body=spec.get("body", NOT_SET),
            query=spec.get("query"),
            media_type="application/json" if "body" in spec else None,
        )
        _prepare(case, fuzz_world)
        _check(case, case.call(app=fuzz_app))
