"""Outcomes and seats from the events in ClickHouse: backfill, seat recompute, reports.

The same pure rule code as the stream (:mod:`meterline.stream_processors.rules`) runs here over
events read back from ClickHouse, so a backfill gives the ids and values the stream gives.
"""
