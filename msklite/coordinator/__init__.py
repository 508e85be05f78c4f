"""Consumer groups and committed offsets: the classic group protocol as a synchronous state
machine (`coordinator.py`, `group.py`, `offsets.py`), the `__consumer_offsets` record formats
(`records.py`) and the thin asyncio runtime that applies its decisions (`runtime.py`)."""
