"""The Faust layer: where meterline corrects or bypasses faust-streaming, in one folder.

Written against faust-streaming 0.15 (pinned ``>=0.15.3,<0.16``). Every private Faust member
these modules override or read is checked by
``tests/stream_processors/faust_layer/test_private_members.py``, which fails naming the member
when a Faust release drops it. Delete a module when its "can go" holds and the tests that
prove it still pass without it.

+------------------+-------------------------------------------------------------------------+
| module           | fix / upstream / proved by / can go                                     |
+==================+=========================================================================+
| ``commits.py``   | commits never pass an unacknowledged record (no inferred gaps; a hold   |
|                  | is resolved from the log; read-past-commit holds) / faust-streaming     |
|                  | #606 (open), #312, #216 / faust_layer/test_commits.py,                  |
|                  | integration/test_faults.py, test_end_offsets.py / Faust commits only    |
|                  | consecutive acknowledged offsets and never infers gaps                  |
+------------------+-------------------------------------------------------------------------+
| ``end_offsets``  | table recovery reads each changelog to its true end; assembles the      |
|                  | consumer class of the fixes / none filed (Tansu's ListOffsets answer) / |
|                  | integration/test_end_offsets.py, test_faults.py (kill -9) / the broker  |
|                  | reports true end offsets (Apache Kafka does)                            |
+------------------+-------------------------------------------------------------------------+
| ``fetch_audit``  | warns when the fetch loop drops or skips records of acknowledged        |
|                  | topics / none filed / faust_layer/test_fetch_audit.py / Faust logs      |
|                  | dropped records above its "dev" level                                   |
+------------------+-------------------------------------------------------------------------+
| ``stall.py``     | a worker with lag that fetches nothing fails readiness and is resumed / |
|                  | none filed (cause not pinned down) / faust_layer/test_stall.py,         |
|                  | integration/test_faults.py / the stall's cause is fixed upstream        |
+------------------+-------------------------------------------------------------------------+
| ``output.py``    | outputs and changelogs through one librdkafka producer with batch acks  |
|                  | (Faust's send costs an event-loop round trip per message) / none (cost) |
|                  | / faust_layer/test_output.py, bench/ / Faust's producer sends without a |
|                  | loop round trip per message                                             |
+------------------+-------------------------------------------------------------------------+

The app's configuration (fairness, the recovery consistency check off for Tansu's highwaters;
proved by integration/test_hot_key.py) is in :mod:`meterline.stream_processors.worker`, which
builds the app.

Two state helpers live in :mod:`meterline.stream_processors.state` for the same reason:
``writeback.py`` (batch table writes under ``faust.streams._current_event``) and
``changelog.py`` (changelog records through ``output.py``, serialised as Faust would).
"""
