"""The private faust-streaming members the Faust layer overrides or reads still exist.

``stream_processors/faust_layer/`` and ``stream_processors/state/`` were written against
faust-streaming 0.15 (pinned ``>=0.15.3,<0.16`` in pyproject.toml). Faust may rename or drop
any of these in a release; this test names the member that is gone instead of letting a worker
fail later (or, worse, keep running with a fix that silently no longer applies).
"""

from __future__ import annotations

import inspect
from importlib.metadata import version

import pytest
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka

# methods overridden (commits.py, fetch_audit.py, end_offsets.py) or called (stall.py)
CONSUMER_METHODS = (
    "_new_offset",
    "_add_gap",
    "_filter_tps_with_pending_acks",
    "_wait_next_records",
    "_is_changelog_tp",
    "_get_active_partitions",
    "perform_seek",
    "on_partitions_revoked",
    "getmany",
    "resume_partitions",
    "highwaters",
    "seek_wait",
)
# instance state the layer reads: assigned in faust's Consumer.__init__ / reset_state
CONSUMER_STATE = (
    "_acked",
    "_gap",
    "_committed_offset",
    "_read_offset",
    "_unacked_messages",
    "_paused_partitions",
)


def test_the_pinned_minor_version_is_installed() -> None:
    major, minor = (int(part) for part in version("faust-streaming").split(".")[:2])
    assert (major, minor) == (0, 15), (
        f"faust-streaming {version('faust-streaming')} is installed; the Faust layer was "
        "written against 0.15: re-check every member below before widening the pin"
    )


@pytest.mark.parametrize("name", CONSUMER_METHODS)
def test_a_consumer_method_the_layer_overrides_exists(name: str) -> None:
    assert callable(getattr(faust_aiokafka.Consumer, name, None)), (
        f"faust's Consumer.{name} is gone: the Faust layer overrides or calls it "
        "(stream_processors/faust_layer/)"
    )


@pytest.mark.parametrize("name", CONSUMER_STATE)
def test_consumer_state_the_layer_reads_is_still_assigned(name: str) -> None:
    source = inspect.getsource(faust_consumer.Consumer)
    assert f"self.{name}" in source, (
        f"faust's Consumer no longer assigns self.{name}: the Faust layer reads it "
        "(stream_processors/faust_layer/)"
    )


def test_the_stream_and_app_members_the_layer_uses_exist() -> None:
    import faust
    from faust import streams
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
    from faust.utils import json as faust_json

    assert hasattr(streams, "_current_event"), "faust.streams._current_event is gone (state/)"
    assert callable(getattr(faust_json, "dumps", None)), "faust.utils.json.dumps is gone"
    assert callable(getattr(AIOKafkaConsumerThread, "_ensure_consumer", None)), (
        "AIOKafkaConsumerThread._ensure_consumer is gone (faust_layer/stall.py)"
    )
    assert "_fetcher" in inspect.getsource(faust.App), "App._fetcher is gone (faust_layer/stall.py)"
    assert issubclass(faust_aiokafka.Transport, object)
