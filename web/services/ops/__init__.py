"""What the ops console pages show, gathered from domain services and repositories."""
