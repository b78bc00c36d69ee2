from tests.egress.fake_dns import fake_dns  # noqa: F401
