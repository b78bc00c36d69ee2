"""The API surfaces clients call beyond chat, as pure translations to and from chat.

The relay routes, bills, falls back and logs exactly one thing: an OpenAI chat body in, an
OpenAI chat answer (JSON or chunks) and one `Usage` out (domain/providers/base.py). Every
other wire format a client speaks (Anthropic Messages, OpenAI Responses, legacy
completions) is therefore translated at the edge into that body and its answer translated
back, so none of them needs its own routing or billing path. Embeddings are not chat, but
their validation, encoding and token estimate live here for the same reason: the edge
plugs them into the relay without touching it.

Everything here is pure (no I/O, no database, no clock beyond timestamps in ids and
`created` fields): functions and small state machines that the relay's routers call.
docs/surfaces.md records each mapping and every decision (what is dropped, refused or
passed through).
"""
