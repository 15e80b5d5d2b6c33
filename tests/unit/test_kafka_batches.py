"""Records of one stream batch are grouped into one Kafka record batch per partition."""

from __future__ import annotations

from citywatch.stream.kafka_batches import by_partition


def test_records_are_grouped_per_partition_in_their_order_and_keys_hashed_once() -> None:
    asked: list[tuple[str, bytes]] = []

    def partition_of(topic: str, key: bytes) -> int:
        asked.append((topic, key))
        return len(key) % 2

    records = [
        ("receipts", b"cam-1", b"r1"),
        ("events", b"wo-17", b"e1"),
        ("receipts", b"cam-22", b"r2"),
        ("receipts", b"cam-1", b"r3"),
        ("events", b"wo-17", b"e2"),
    ]
    assert by_partition(records, partition_of) == {
        ("receipts", 1): [(b"cam-1", b"r1"), (b"cam-1", b"r3")],
        ("events", 1): [(b"wo-17", b"e1"), (b"wo-17", b"e2")],
        ("receipts", 0): [(b"cam-22", b"r2")],
    }
    assert sorted(asked) == [("events", b"wo-17"), ("receipts", b"cam-1"), ("receipts", b"cam-22")]
