"""Partition replicas as a broker hosts them: leadership checks, the high watermark, acks and
min.insync.replicas, and the purgatory where fetches wait for data. No sockets, no requests."""
