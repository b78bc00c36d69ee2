"""`GET /v1/files/{task_id}/{index}?exp=…&sig=…`: a stored task result behind a short-lived
signed URL (`domain.results.signing`).

No API key: the signature is the credential, so browsers (`<img>`, `<video>`) and the SDKs'
download helpers can open what `GET /v1/tasks/{id}` hands out. 403 `permission_denied` when
the signature is missing, altered or expired; 404 when the object is gone (retention).
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.responses import Response, StreamingResponse

from domain.errors import NotFound
from domain.inputs import Text
from domain.results.repository import object_key
from domain.results.signing import MAX_TTL_S, BadSignature
from domain.results.store import Blob, BlobNotFound
from domain.tasks.content import filename
from edge.deps import ResourcesDep

router = APIRouter(prefix="/v1", tags=["files"])

# Whatever type a provider claimed, our origin must never run it as a page.
_HARDENING = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}


class BlobDownload(StreamingResponse):
    """A stored object, streamed as read from the store (never held whole)."""

    def __init__(self, blob: Blob, headers: dict[str, str]) -> None:
        headers = {**headers, **_HARDENING, "Content-Length": str(blob.info.size)}
        super().__init__(blob.chunks(), media_type=blob.info.content_type, headers=headers)


@router.get("/files/{task_id}/{index}", response_model=None)
async def get_file(
    task_id: uuid.UUID,
    index: Annotated[int, Path(ge=0, le=1000)],
    resources: ResourcesDep,
    exp: Annotated[int | None, Query(ge=0, le=2**53, description="expiry, Unix seconds")] = None,
    sig: Annotated[Text | None, Query(max_length=200, description="the URL's signature")] = None,
) -> Response:
    """A task result through the signed URL `GET /v1/tasks/{id}` gave (`result.urls`)."""
    if exp is None or sig is None:
        raise BadSignature("this file URL is not signed", param="sig")
    now = time.time()
    resources.results.signer.verify(task_id, index, exp, sig, now=now)
    try:
        blob = await resources.results.store.open(object_key(task_id, index))
    except BlobNotFound:
        raise NotFound(
            "no such file (results are deleted after your organization's retention window)"
        ) from None
    name = filename(task_id, blob.info.content_type, index)
    max_age = max(0, min(int(exp - now), MAX_TTL_S))
    return BlobDownload(
        blob,
        {
            "Content-Disposition": f'inline; filename="{name}"',
            "Cache-Control": f"private, max-age={max_age}",
        },
    )
