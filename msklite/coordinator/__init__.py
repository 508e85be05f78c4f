"""Consumer groups and committed offsets: the classic group protocol as a synchronous state
machine (`coordinator.py`, `group.py`, `offsets.py`), the `__consumer_offsets` record formats
(`records.py`), the generic asyncio runtime that applies a coordinator's decisions
(`runtime.py`) and the group coordinator's door on it (`group_runtime.py`)."""
