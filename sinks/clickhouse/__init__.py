"""ClickHouse side of the sink: connection, DDL, row mapping and batch writes."""
