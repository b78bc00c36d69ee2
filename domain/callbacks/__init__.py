"""Task callbacks: SSRF-safe targets, Standard Webhooks signing, per-org secrets, delivery."""
