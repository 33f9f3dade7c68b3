"""meterline: metering and billing for AI agents.

``import meterline`` is the agent SDK (the same API as :mod:`meterline.producers`)::

    import meterline

    meterline.init(bootstrap_servers="kafka:9092", project_id="acme")
    with meterline.action("search", trace_id=trace_id):
        ...

The pipeline lives beside it: :mod:`meterline.stream_processors` (Faust workers),
:mod:`meterline.sinks` (ClickHouse), :mod:`meterline.schemas` (the wire format), and the
product shell (:mod:`meterline.cli`, :mod:`meterline.ops`, :mod:`meterline.embedded`,
:mod:`meterline.billing`, :mod:`meterline.dashboard`, :mod:`meterline.demo`). The shell depends
on those four packages, never the reverse (tests/test_import_graph.py).
"""

from meterline import producers as _sdk
from meterline.producers import *  # noqa: F403  (the SDK's public API is meterline's)

__all__ = list(_sdk.__all__)


def __getattr__(name: str) -> object:
    # names shared by an SDK class and a wire record say where to look
    return _sdk.__getattr__(name)
