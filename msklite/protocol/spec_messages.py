"""kafka-python message classes built by kafka-python's generic codec from msklite's own specs
(`msklite.protocol.specs`), for the messages whose spec kafka-python lacks or ships without
versions Kafka still serves; loaded lazily like every spec codec (`msklite.protocol.messages`)."""

from __future__ import annotations

import types
from typing import Any

from kafka.protocol.api_message import ApiMessage


def spec_message(name: str) -> Any:
    return types.new_class(name, (ApiMessage,), {"load_json": "msklite.protocol.specs"})


# Kafka 3.9's specs: kafka-python's start at version 1, Kafka 4.0's baseline.
CreateAclsRequest = spec_message("CreateAclsRequest")
CreateAclsResponse = spec_message("CreateAclsResponse")
DescribeAclsRequest = spec_message("DescribeAclsRequest")
DescribeAclsResponse = spec_message("DescribeAclsResponse")
DeleteAclsRequest = spec_message("DeleteAclsRequest")
DeleteAclsResponse = spec_message("DeleteAclsResponse")
