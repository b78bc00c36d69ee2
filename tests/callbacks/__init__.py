"""Callbacks: SSRF rules, Standard Webhooks signing, delivery, its workflow, the portal secret."""
