"""The Java client's default partitioner (murmur2), in Python.

librdkafka's ``murmur2_random``, aiokafka's default and Kafka's Java producer all map a
non-null key to ``(murmur2(key) & 0x7fffffff) % partitions``. The SDK needs the same answer
to group records by partition before framing them into one batch message, so that a
batch lands exactly where each of its records would have landed on its own.
"""

from __future__ import annotations

_M = 0x5BD1E995
_SEED = 0x9747B28C
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """32-bit murmur2 as implemented by Kafka's ``Utils.murmur2`` (unsigned result)."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    end = length & ~3
    for i in range(0, end, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    rest = length & 3
    if rest == 3:
        h ^= data[end + 2] << 16
    if rest >= 2:
        h ^= data[end + 1] << 8
    if rest >= 1:
        h ^= data[end]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


#: murmur2 of recent keys: records of one trace share a key, and the hash in Python costs
#: several microseconds a key. Bounded: cleared when full (a cache, not state).
_HASHES: dict[bytes, int] = {}
_HASHES_MAX = 65_536


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for ``key``."""
    h = _HASHES.get(key)
    if h is None:
        if len(_HASHES) >= _HASHES_MAX:
            _HASHES.clear()
        h = _HASHES[key] = murmur2(key) & 0x7FFFFFFF
    return h % partitions
