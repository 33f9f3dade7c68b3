from tests.producers.fixtures import client, sink

__all__ = ["client", "sink"]
