"""DescribeUserScramCredentials (key 50), AlterUserScramCredentials (key 51), version 0.

Behavior:
- The credentials are the cluster's SCRAM users (msklite.security.scram): saved with the
  cluster metadata, salted and iterated as Kafka stores them (salt, stored key, server key,
  iterations; the salted password AlterUserScramCredentials carries is not kept), and used by
  the next authentication at once.
- Describe needs DESCRIBE on the cluster (CLUSTER_AUTHORIZATION_FAILED, the top-level error);
  null or no users: every user; per user its mechanisms (1 SCRAM-SHA-256, 2 SCRAM-SHA-512)
  and iterations, RESOURCE_NOT_FOUND for an unknown one, DUPLICATE_RESOURCE for one named
  twice.
- Alter needs ALTER on the cluster (every user CLUSTER_AUTHORIZATION_FAILED); per user, as
  Kafka's controller: one alteration per user (DUPLICATE_RESOURCE), a non-empty name
  (UNACCEPTABLE_CREDENTIAL), a known mechanism (UNSUPPORTED_SASL_MECHANISM), 4096-16384
  iterations (UNACCEPTABLE_CREDENTIAL "Too few/many iterations"), a deletion of a credential
  that exists (RESOURCE_NOT_FOUND).

Deviations from Kafka/MSK:
- MSK manages SCRAM users through Secrets Manager (BatchAssociateScramSecret); msklite serves
  Kafka's APIs for them instead.
"""

from __future__ import annotations

from collections import Counter

from msklite.credentials import TYPE_OF
from msklite.errors import ErrorCode
from msklite.handlers.authorization import ALTER, DESCRIBE, allowed
from msklite.handlers.context import BrokerContext
from msklite.handlers.registry import handles, spec_request, spec_response
from msklite.protocol import schemas
from msklite.protocol.api_keys import ApiKey
from msklite.protocol.header import RequestHeader
from msklite.protocol.primitives import Buffer, Reader

Described = schemas.DescribeUserScramCredentialsResponse.DescribeUserScramCredentialsResult
Altered = schemas.AlterUserScramCredentialsResponse.AlterUserScramCredentialsResult
_DENIED = "Cluster authorization failed."


@handles(ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS, versions=(0, 0), flexible_from=0)
def describe(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    req = spec_request(schemas.DescribeUserScramCredentialsRequest, header, r)
    if not allowed(ctx, header, DESCRIBE):
        return spec_response(
            header,
            schemas.DescribeUserScramCredentialsResponse(
                throttle_time_ms=0,
                error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
                error_message=_DENIED,
                results=[],
            ),
        )
    table = ctx.controller.scram
    names = [u.name for u in req.users or []] or sorted(table)
    counts = Counter(names)
    results = []
    for user in dict.fromkeys(names):
        result = Described(user=user, error_code=0, error_message=None, credential_infos=[])
        if counts[user] > 1:
            result.error_code = ErrorCode.DUPLICATE_RESOURCE
            result.error_message = (
                "Cannot describe SCRAM credentials for the same user twice in a single "
                f"request: {user}"
            )
        elif user not in table:
            result.error_code = ErrorCode.RESOURCE_NOT_FOUND
            result.error_message = (
                f"Attempt to describe a user credential that does not exist: {user}"
            )
        else:
            result.credential_infos = [
                Described.CredentialInfo(mechanism=TYPE_OF[m], iterations=c.iterations)
                for m, c in sorted(table[user].items(), key=lambda mc: TYPE_OF[mc[0]])
            ]
        results.append(result)
    return spec_response(
        header,
        schemas.DescribeUserScramCredentialsResponse(
            throttle_time_ms=0, error_code=0, error_message=None, results=results
        ),
    )


@handles(ApiKey.ALTER_USER_SCRAM_CREDENTIALS, versions=(0, 0), flexible_from=0)
def alter(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    req = spec_request(schemas.AlterUserScramCredentialsRequest, header, r)
    if not allowed(ctx, header, ALTER):
        users = dict.fromkeys([d.name for d in req.deletions] + [u.name for u in req.upsertions])
        results = [
            Altered(
                user=u, error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, error_message=_DENIED
            )
            for u in users
        ]
    else:
        outcomes = ctx.controller.alter_scram_credentials(
            [(d.name, d.mechanism) for d in req.deletions],
            [
                (u.name, u.mechanism, u.iterations, bytes(u.salt), bytes(u.salted_password))
                for u in req.upsertions
            ],
        )
        results = [Altered(user=u, error_code=e, error_message=m) for u, e, m in outcomes]
    return spec_response(
        header, schemas.AlterUserScramCredentialsResponse(throttle_time_ms=0, results=results)
    )
