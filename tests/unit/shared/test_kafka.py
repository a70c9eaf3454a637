from aiokafka.partitioner import DefaultPartitioner

from shared.kafka import KeyPartitioner


def test_memoised_partitioning_maps_every_key_as_kafkas_default_partitioner_does() -> None:
    ours, default = KeyPartitioner(max_keys=50), DefaultPartitioner()
    for n in (1, 3, 6, 12):
        partitions = list(range(n))
        for i in range(300):
            key = f"tenant-{i % 7}:rep-{i}".encode()
            assert ours(key, partitions, partitions) == default(key, partitions, partitions)
            assert ours(key, partitions, partitions) == default(key, partitions, partitions)  # from the cache
