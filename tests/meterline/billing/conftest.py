from tests.sinks.fixtures import writer

__all__ = ["writer"]
