from tests.fakes.provider import FakeProvider, Fault, RecordedRequest

__all__ = ["FakeProvider", "Fault", "RecordedRequest"]
