"""Coordinators as synchronous state machines, each with the records of its internal topic:
consumer groups and committed offsets (`coordinator.py`, `group.py`, `offsets.py`,
`records.py`: `__consumer_offsets`) and transactions (`transaction.py`, `txn_records.py`:
`__transaction_state`); the generic asyncio runtime that applies a machine's decisions
(`runtime.py`) and each coordinator's door on it (`group_runtime.py`, `txn_runtime.py`)."""
