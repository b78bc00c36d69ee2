"""`/docs` and `/redoc` work with the network off: every asset their pages reference is
served by the app itself; and the OpenAPI document offers "Authorize" and the new
surfaces' request bodies."""

from __future__ import annotations

import re

import httpx
import pytest

ASSET_REF = re.compile(r"""(?:src|href|url)\s*[=:(]\s*['"]([^'"]+)['"]""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_load_every_asset_from_the_app(
    client: httpx.AsyncClient, page: str
) -> None:
    resp = await client.get(page)
    assert resp.status_code == 200
    html = resp.text
    assert "cdn." not in html and "googleapis" not in html
    refs = set(ASSET_REF.findall(html))
    assert refs, "the page references its assets"
    for ref in refs:
        assert ref.startswith("/"), f"{page} loads {ref} from elsewhere"
        asset = await client.get(ref)
        assert asset.status_code == 200, ref
        assert asset.content, ref
    assert "/openapi.json" in refs or "/openapi.json" in html


async def test_openapi_offers_authorize_and_describes_the_new_bodies(
    client: httpx.AsyncClient,
) -> None:
    doc = (await client.get("/openapi.json")).json()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {**schemes["ApiKey"], "type": "http", "scheme": "bearer"}
    assert schemes["AnthropicApiKey"]["name"] == "x-api-key"
    paths = doc["paths"]
    for path in ("/v1/embeddings", "/v1/completions", "/v1/responses", "/v1/messages",
                 "/v1/messages/count_tokens", "/v1/chat/completions"):  # fmt: skip
        operation = paths[path]["post"]
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        assert "model" in body["required"], path
        assert operation["security"], path
    assert paths["/v1/models/{model_id}"]["get"]["security"] == [{"ApiKey": []}]
    assert paths["/portal/v1/me"]["get"]["security"] == [{"PortalToken": []}]
    assert "security" not in paths["/portal/v1/auth/login"]["post"]


# Operations that take no body: actions on the resource their path names, and Stripe's
# webhook, whose raw bytes are verified against Stripe's signature before being read.
BODILESS = {
    "POST /v1/tasks/{task_id}/cancel",
    "POST /portal/v1/auth/logout",
    "POST /portal/v1/plan/portal",
    "POST /portal/v1/webhook-secret",
    "POST /webhooks/stripe",
    "POST /enterprise/v1/departments/{department_id}/archive",
    "POST /enterprise/v1/departments/{department_id}/restore",
    "POST /enterprise/v1/cost-centers/{cost_center_id}/archive",
    "POST /enterprise/v1/cost-centers/{cost_center_id}/restore",
    "POST /enterprise/v1/sso/domains/verify",
    "POST /enterprise/v1/sso/test",
    "POST /admin/v1/channels/{channel_id}/test",
}


async def test_every_operation_that_takes_a_body_declares_its_schema(
    client: httpx.AsyncClient,
) -> None:
    doc = (await client.get("/openapi.json")).json()
    undeclared = {
        f"{method.upper()} {path}"
        for path, operations in doc["paths"].items()
        for method, operation in operations.items()
        if method in ("post", "put", "patch") and "requestBody" not in operation
    }
    assert undeclared == BODILESS
    for path in ("/v1/images/generations", "/v1/videos", "/v1/audio/speech"):
        content = doc["paths"][path]["post"]["requestBody"]["content"]
        assert "model" in content["application/json"]["schema"]["required"], path
    assert "multipart/form-data" in doc["paths"]["/v1/videos"]["post"]["requestBody"]["content"]
