"""Storage: Kafka's on-disk log layout, knowing bytes, offsets and files only — never
requests, responses, replication or sockets. Not thread-safe: owned by the event loop."""
