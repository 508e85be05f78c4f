"""`msklite topic|group|produce|consume|cluster`: everyday commands that speak the Kafka protocol
to any cluster (msklite's own or a real MSK one) through kafka-python, imported only when one of
them runs so that `msklite serve` starts as fast as before."""
