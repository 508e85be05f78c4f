"""Message specs of the share-group APIs (KIP-932) that kafka-python does not ship, written for
msklite in the JSON form of Apache Kafka's message specs so that kafka-python's generic codec
and scripts/generate_schemas.py read them like their own. Only the versions msklite serves of
what Kafka 4.2 serves (ShareFetch/ShareAcknowledge 1-2, DescribeShareGroupOffsets 0-1, the rest 1
or 0); `about` texts are left out. Likewise Kafka 3.9's specs of the ACL APIs (Create, Describe
and DeleteAcls 0-3): kafka-python ships Kafka 4.0's, which dropped version 0."""
