"""APIs advertised only to be refused, so that clients that would otherwise wait forever get a
clear error at once.

ConsumerGroupHeartbeat (key 68), versions 0-1: the KIP-848 consumer group protocol. A client
asked for `group.protocol=consumer` looks for this API; when a broker does not advertise it,
librdkafka keeps looking for another coordinator and the application sees nothing at all.
Kafka brokers whose group coordinator has the new protocol disabled advertise the API and
answer UNSUPPORTED_VERSION, which librdkafka reports as a fatal consumer error; so does this.
librdkafka tries the protocol only where v1 is advertised: under `--kafka-version` 4.0.x and
4.1.x (3.7.x-3.9.x advertise v0 only, earlier releases nothing, as those releases did).

Deviations from Kafka/MSK:
- The KIP-848 protocol is not served: every ConsumerGroupHeartbeat is answered
  UNSUPPORTED_VERSION (classic groups work as in Kafka).
"""

from __future__ import annotations

from msklite.errors import ErrorCode
from msklite.handlers.context import BrokerContext
from msklite.handlers.registry import handles
from msklite.protocol.api_keys import ApiKey
from msklite.protocol.header import RequestHeader
from msklite.protocol.primitives import Buffer, Reader, Writer

NO_CONSUMER_PROTOCOL = (
    "msklite serves the classic consumer group protocol only: "
    "set group.protocol=classic (KIP-848's consumer protocol is not served yet)"
)


@handles(ApiKey.CONSUMER_GROUP_HEARTBEAT, versions=(0, 1), flexible_from=0)
def consumer_group_heartbeat(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    # v0 and v1 answer alike; nothing in the request changes the refusal.
    w = Writer()
    w.int32(0)  # throttle_time_ms
    w.int16(ErrorCode.UNSUPPORTED_VERSION)
    w.nullable_str(NO_CONSUMER_PROTOCOL, True)
    w.nullable_str(None, True)  # member_id
    w.int32(-1)  # member_epoch
    w.int32(0)  # heartbeat_interval_ms
    w.int8(-1)  # assignment: null
    w.empty_tagged_fields()
    return [w.buf]
