"""Where a key lives: the partition Kafka's default partitioner gives a record key.

The SDK produces with librdkafka's ``murmur2_random`` partitioner, the Java client's
default, so a location's events share a partition. The worker recomputes it to refuse
an event found on any other partition: the key is signed and must be the event's
location id, so the partition follows from the signed bytes and a replayed copy
cannot reach a second partition (and a second duplicate window).
"""

from __future__ import annotations

import functools

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash of ``data`` as a signed 32-bit int (``Utils.murmur2``)."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    whole = length & ~3
    for index in range(0, whole, 4):
        k = int.from_bytes(data[index : index + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    rest = length & 3
    if rest == 3:
        h ^= data[whole + 2] << 16
    if rest >= 2:
        h ^= data[whole + 1] << 8
    if rest >= 1:
        h ^= data[whole]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


@functools.lru_cache(maxsize=1 << 16)  # locations repeat; bounded whatever keys arrive
def key_partition(key: bytes, partitions: int) -> int:
    """The partition of ``key`` among ``partitions`` (``toPositive(murmur2) % n``)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
