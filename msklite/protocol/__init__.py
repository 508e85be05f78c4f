"""Sans-IO Kafka wire codec: bytes in, typed values out, and back.

Imports only the standard library, `msklite.errors`, `crc32c`/`cramjam` (record batches) and,
lazily, kafka-python's spec-generated classes (`messages.py`). No asyncio, sockets, mmap or
storage: `tests/test_architecture.py` enforces it.
"""
