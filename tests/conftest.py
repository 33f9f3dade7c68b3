from tests.fixtures import clickhouse, pipeline_factory, settings, tansu

__all__ = ["clickhouse", "pipeline_factory", "settings", "tansu"]
