"""Request handlers, one module per API family, each registering the versions it serves.

A handler may use the replica manager, the controller and the caches in its BrokerContext;
it never calls another handler and never touches the transport. Importing this package
registers every handler.
"""

from msklite.handlers import (  # noqa: F401  (imported for registration)
    acls,
    alter_configs,
    api_versions,
    client_quotas,
    configs,
    consumer_groups,
    delete_records,
    fetch,
    groups,
    leader_epoch,
    list_offsets,
    metadata,
    offsets,
    produce,
    producer_id,
    replicas,
    sasl,
    scram_admin,
    share_fetch,
    share_groups,
    topics,
    transaction_admin,
    transactions,
)
from msklite.handlers.registry import HANDLERS, HandlerSpec, served_versions

__all__ = ["HANDLERS", "HandlerSpec", "served_versions"]
