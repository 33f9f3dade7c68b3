from tests.sinks.fixtures import other_writer, writer

__all__ = ["other_writer", "writer"]
