"""What console pages show, gathered from domain services and repositories (no SQL here)."""
