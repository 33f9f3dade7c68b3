from tests.producers.fixtures import client, sink
from tests.producers.http_fixtures import fake_gateway

__all__ = ["client", "fake_gateway", "sink"]
