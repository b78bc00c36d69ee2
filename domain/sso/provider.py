"""Talking to an org's OpenID provider: discovery, keys, the code exchange, the ID token.

Every URL here is tenant-chosen (the issuer, and whatever its discovery document names), so
each is judged by the tenant egress policy and fetched through the policed client: a tenant
cannot make us fetch internal addresses by naming them as an identity provider. Bodies are
bounded, redirects are not followed, and failures become messages an admin can act on.

The OAuth and JOSE work is authlib's: PKCE challenge, authorization URL and client
authentication from `authlib.oauth2`, ID token claims from `authlib.oidc.core`, signatures
through joserfc, the JOSE library authlib itself verifies OpenID tokens with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import ClaimError, ExpiredTokenError, JoseError, MissingClaimError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from domain.egress.pinning import EgressRefused
from domain.egress.policy import EgressPolicy, check_url
from domain.errors import DomainError, InvalidField

TIMEOUT = httpx.Timeout(10.0)
MAX_BODY_BYTES = 256 * 1024
CLOCK_LEEWAY_S = 60
# Asymmetric algorithms only: an HMAC-signed ID token would be keyed with the client secret,
# and "none" is no signature at all.
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                      "ES256", "ES384", "ES512", "EdDSA")  # fmt: skip
SCOPE = "openid email profile"


class ProviderError(DomainError):
    """The identity provider could not be reached or answered something unusable (502)."""

    code = "upstream_error"


class ProviderRefused(DomainError):
    """The provider, or our checks of what it sent, refused this sign-in (401)."""

    code = "authentication_required"


@dataclass(frozen=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    signing_algorithms: tuple[str, ...]
    token_auth_method: str


@dataclass(frozen=True)
class Client:
    """The org's registered client. `secret` is plaintext for one request: never logged."""

    client_id: str
    secret: str

    def __repr__(self) -> str:
        return f"Client(client_id={self.client_id!r}, secret='***')"


@dataclass(frozen=True)
class Challenge:
    """What one sign-in sends the provider and must keep for its finish."""

    state: str
    nonce: str
    code_verifier: str


def new_challenge() -> Challenge:
    return Challenge(generate_token(43), generate_token(43), generate_token(64))


def authorization_url(
    meta: ProviderMetadata,
    client_id: str,
    redirect_uri: str,
    challenge: Challenge,
    login_hint: str | None,
) -> str:
    url: str = prepare_grant_uri(
        meta.authorization_endpoint,
        client_id,
        "code",
        redirect_uri=redirect_uri,
        scope=SCOPE,
        state=challenge.state,
        nonce=challenge.nonce,
        code_challenge=create_s256_code_challenge(challenge.code_verifier),
        code_challenge_method="S256",
        login_hint=login_hint,
    )
    return url


def discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


async def discover(http: httpx.AsyncClient, issuer: str, egress: EgressPolicy) -> ProviderMetadata:
    """The provider's metadata from its discovery document, each endpoint judged by the
    egress policy; its `issuer` must be the one configured (OpenID Discovery §4.3)."""
    doc = await _get_json(http, discovery_url(issuer), "the discovery document", egress)
    found = doc.get("issuer")
    if not isinstance(found, str) or found.rstrip("/") != issuer.rstrip("/"):
        raise ProviderError(
            f"the discovery document names issuer {str(found)[:200]!r}, not {issuer!r}"
        )

    def endpoint(name: str) -> str:
        value = doc.get(name)
        if not isinstance(value, str) or not value:
            raise ProviderError(f"the discovery document has no {name}")
        try:
            return check_url(value, param=name, policy=egress).url
        except InvalidField as exc:
            raise ProviderError(f"the discovery document's {exc.message}") from None

    algorithms = doc.get("id_token_signing_alg_values_supported") or ["RS256"]
    usable = tuple(a for a in algorithms if a in SIGNING_ALGORITHMS)
    if not usable:
        raise ProviderError(
            "the provider signs ID tokens with none of "
            + ", ".join(SIGNING_ALGORITHMS)
            + f" (it offers {', '.join(map(str, algorithms))[:200]})"
        )
    methods = doc.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    if "client_secret_basic" in methods:
        auth_method = "client_secret_basic"
    elif "client_secret_post" in methods:
        auth_method = "client_secret_post"
    else:
        raise ProviderError("the token endpoint accepts neither client_secret_basic nor _post")
    challenges = doc.get("code_challenge_methods_supported")
    if isinstance(challenges, list) and "S256" not in challenges:
        raise ProviderError("the provider does not support PKCE with S256")
    return ProviderMetadata(
        issuer=found,
        authorization_endpoint=endpoint("authorization_endpoint"),
        token_endpoint=endpoint("token_endpoint"),
        jwks_uri=endpoint("jwks_uri"),
        signing_algorithms=usable,
        token_auth_method=auth_method,
    )


async def fetch_keys(
    http: httpx.AsyncClient, meta: ProviderMetadata, egress: EgressPolicy
) -> KeySet:
    doc = await _get_json(http, meta.jwks_uri, "the JWKS", egress)
    try:
        keys = KeySet.import_key_set(doc)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise ProviderError(f"the JWKS holds no usable keys ({type(exc).__name__})") from None
    if not keys.keys:
        raise ProviderError("the JWKS holds no keys")
    return keys


async def exchange_code(
    http: httpx.AsyncClient,
    meta: ProviderMetadata,
    client: Client,
    *,
    code: str,
    redirect_uri: str,
    code_verifier: str,
    egress: EgressPolicy,
) -> dict[str, Any]:
    """The token response for an authorization code, authenticated with the client secret."""
    status, doc = await _token_request(
        http, meta, client, egress,
        code=code, redirect_uri=redirect_uri, code_verifier=code_verifier,
    )  # fmt: skip
    if status >= 400 or "error" in doc:
        error = str(doc.get("error") or f"HTTP {status}")[:100]
        detail = str(doc.get("error_description") or "")[:300]
        message = f"the identity provider refused the authorization code ({error})"
        if status >= 500:
            raise ProviderError(message)
        raise ProviderRefused(message + (f": {detail}" if detail else ""))
    if not isinstance(doc.get("id_token"), str):
        raise ProviderError("the token endpoint answered without an id_token")
    return doc


async def probe_client(
    http: httpx.AsyncClient, meta: ProviderMetadata, client: Client, egress: EgressPolicy
) -> str:
    """Whether the token endpoint knows our client: a code nobody issued, sent with our
    credentials, is refused as `invalid_grant` once they pass and `invalid_client` if not.
    "accepted", "rejected" or "unknown" (the provider said something else)."""
    try:
        status, doc = await _token_request(
            http, meta, client, egress,
            code="oxinf-connection-test", redirect_uri="https://invalid.example/oxinf",
        )  # fmt: skip
    except ProviderError:
        return "unknown"
    error = doc.get("error")
    if error == "invalid_client" or status == 401:
        return "rejected"
    return "accepted" if error == "invalid_grant" else "unknown"


async def _token_request(
    http: httpx.AsyncClient,
    meta: ProviderMetadata,
    client: Client,
    egress: EgressPolicy,
    **params: str,
) -> tuple[int, dict[str, Any]]:
    body = prepare_token_request("authorization_code", **params)
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    auth = ClientAuth(client.client_id, client.secret, meta.token_auth_method)
    url, headers, body = auth.prepare("POST", meta.token_endpoint, headers, body)
    status, raw = await _send(
        http, "POST", url, "the token endpoint", egress, headers=headers, content=body
    )
    return status, _json_object(raw, "the token endpoint")


def verify_id_token(
    id_token: str,
    keys: KeySet,
    meta: ProviderMetadata,
    *,
    client_id: str,
    nonce: str,
    access_token: str | None,
) -> dict[str, Any]:
    """The ID token's claims once its signature (against the provider's JWKS) and its
    issuer, audience, expiry, issue time and nonce all check out."""
    try:
        token = jwt.decode(
            id_token, keys, registry=JWSRegistry(algorithms=list(meta.signing_algorithms))
        )
    except JoseError as exc:
        raise ProviderRefused(f"the ID token's signature is not valid ({exc.error})") from None
    except ValueError:
        raise ProviderRefused("the ID token is not a signed JWT") from None
    options: dict[str, Any] = {
        "iss": {"essential": True, "value": meta.issuer},
        "aud": {"essential": True, "value": client_id},
        "sub": {"essential": True},
        "exp": {"essential": True},
        "iat": {"essential": True},
        "nonce": {"essential": True, "value": nonce},
    }
    params = {"nonce": nonce, "client_id": client_id, "access_token": access_token}
    claims = CodeIDToken(token.claims, token.header, options, params)
    try:
        claims.validate(leeway=CLOCK_LEEWAY_S)
    except JoseError as exc:
        raise ProviderRefused(_claim_problem(exc)) from None
    return dict(claims)


_CLAIM_SENTENCES = {
    "iss": "was issued by another issuer",
    "aud": "was issued for another client (audience)",
    "nonce": "does not answer this sign-in (nonce mismatch)",
    "iat": "has an invalid issue time",
    "nbf": "is not valid yet",
    "azp": "names another authorized party",
    "at_hash": "does not match its access token",
}


def _claim_problem(exc: JoseError) -> str:
    if isinstance(exc, ExpiredTokenError):
        return "the ID token has expired"
    claim = exc.claim if isinstance(exc, ClaimError) else ""
    if isinstance(exc, MissingClaimError):
        return f"the ID token lacks the {claim} claim"
    sentence = _CLAIM_SENTENCES.get(claim)
    return f"the ID token {sentence}" if sentence else f"the ID token's {claim} claim is not valid"


# --- HTTP, bounded and policed -----------------------------------------------------------


async def _get_json(
    http: httpx.AsyncClient, url: str, what: str, egress: EgressPolicy
) -> dict[str, Any]:
    status, raw = await _send(
        http, "GET", url, what, egress, headers={"Accept": "application/json"}
    )
    if status != 200:
        raise ProviderError(f"{what} at {url} answered HTTP {status}")
    return _json_object(raw, what)


async def _send(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    what: str,
    egress: EgressPolicy,
    **kwargs: Any,
) -> tuple[int, bytes]:
    try:
        check_url(url, param="url", policy=egress)
    except InvalidField as exc:
        raise ProviderError(f"{what} {exc.message.removeprefix('url ')}") from None
    try:
        async with http.stream(method, url, timeout=TIMEOUT, **kwargs) as response:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    raise ProviderError(f"{what} answered more than {MAX_BODY_BYTES} bytes")
            return response.status_code, bytes(body)
    except EgressRefused as exc:
        reason = str(exc).removeprefix("base_url ")
        raise ProviderError(f"{what} is refused by the egress policy: {reason}") from None
    except httpx.TimeoutException:
        raise ProviderError(f"{what} at {url} did not answer within 10 s") from None
    except httpx.HTTPError as exc:
        raise ProviderError(
            f"{what} at {url} could not be reached ({type(exc).__name__}: {str(exc)[:200]})"
        ) from None


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ProviderError(f"{what} did not answer JSON") from None
    if not isinstance(doc, dict):
        raise ProviderError(f"{what} did not answer a JSON object")
    return doc
