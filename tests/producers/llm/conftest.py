from tests.producers.llm.fixtures import events, no_emit_failures, traffic

__all__ = ["events", "no_emit_failures", "traffic"]
