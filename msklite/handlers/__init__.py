"""Request handlers, one module per API family, each registering the versions it serves.

A handler may use the replica manager, the controller and the caches in its BrokerContext;
it never calls another handler and never touches the transport. The registry knows every
API at import; a handler's module is imported on its API's first request
(`registry.load_all()` imports them all).
"""

from msklite.handlers.registry import HANDLERS, HandlerSpec, load_all, served_versions

__all__ = ["HANDLERS", "HandlerSpec", "load_all", "served_versions"]
