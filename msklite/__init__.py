"""msklite: Amazon MSK in a box — a pure-Python broker speaking the Apache Kafka wire protocol."""

from msklite.cluster import Cluster
from msklite.errors import ErrorCode, KafkaError

__version__ = "0.1.0"
__all__ = ["Cluster", "ErrorCode", "KafkaError", "__version__"]
