"""Task results that outlive the provider (DESIGN.md §6): the result store, copying results
into it, short-lived signed URLs to them, and their retention.

`Results` is what a process hands the API routes, the task activities and retention: one
store client, one signer and the copy limits, all decided from settings in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.results.copy import CopyLimits
from domain.results.signing import ResultSigner
from domain.results.store import BlobStore


@dataclass(frozen=True)
class Results:
    store: BlobStore
    signer: ResultSigner
    limits: CopyLimits


__all__ = ["BlobStore", "CopyLimits", "ResultSigner", "Results"]
