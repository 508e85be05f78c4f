"""A cluster's security settings and what brokers.py asks of them when it assembles a broker:
the listeners to open, each one's port, TLS context and authenticator factory."""

from __future__ import annotations

import functools
import ssl
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from msklite.authz import AclOperation, Action, Authorizer, ResourceType, Session
from msklite.authz.acls import AclAuthorizer
from msklite.clock import Clock
from msklite.config import BrokerConfigs
from msklite.controller import BrokerInfo, Controller
from msklite.security.listeners import IAM, PLAINTEXT, TLS, ListenerKind, parse_auth
from msklite.security.mechanism import SaslServer
from msklite.security.scram import ScramServer, ScramUsers


def tls_principal(peercert: object) -> str | None:
    """Kafka's default principal for a TLS client: `User:` and the certificate's subject as
    RFC 2253 writes it (most specific first: `CN=name,OU=...,O=...`); None without one.
    `peercert` is what the transport's `getpeercert()` returns."""
    if not isinstance(peercert, dict) or not peercert.get("subject"):
        return None
    parts = [
        f"{_RDN_NAMES.get(key, key)}={value}"
        for rdn in reversed(peercert["subject"])
        for key, value in rdn
    ]
    return "User:" + ",".join(parts)


_RDN_NAMES = {
    "commonName": "CN",
    "organizationalUnitName": "OU",
    "organizationName": "O",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "countryName": "C",
}

if TYPE_CHECKING:
    from msklite.security.authenticator import SaslAuthenticator
    from msklite.security.iam import IamCredential, IamVerifier
    from msklite.security.iam_policy import IamPolicies
    from msklite.security.tls import CertificateAuthority


class ClusterSecurity:
    def __init__(
        self,
        auth: str | Iterable[str] = "plaintext",
        scram_users: Mapping[str, str] | None = None,
        tls_client_auth: bool = False,
        iam_credentials: Mapping[str, IamCredential | Mapping[str, str]] | None = None,
        iam_permissive: bool = True,
        iam_policies: Mapping[str, Any] | None = None,
    ) -> None:
        """`tls_client_auth`: the TLS listener requires a client certificate (mTLS, MSK's
        ClientAuthentication.Tls); the connection's principal is its subject.
        `iam_credentials`: access key id → IamCredential (or its JSON form);
        `iam_permissive`: an unknown access key is accepted (see msklite.security.iam);
        `iam_policies`: principal ARN → policy document(s) (msklite.security.iam_policy)."""
        self.tls_client_auth = tls_client_auth
        self.kinds: tuple[ListenerKind, ...] = parse_auth(auth)
        self.users = ScramUsers()
        for user, password in (scram_users or {}).items():
            self.users.add(user, password)
        # msklite.security.iam and .iam_policy load only when IAM is used (an IAM listener,
        # credentials or policies given, or one added later); what is given is parsed now, so
        # that a bad credential or policy is refused here
        self._iam_permissive = iam_permissive
        self._iam: IamVerifier | None = None
        self._iam_policies: IamPolicies | None = None
        if iam_credentials:
            self._iam = _verifier(iam_credentials, iam_permissive)
        if iam_policies:
            self._iam_policies = _policies(iam_policies)
        self._cluster_arn = ""  # known once authorizer() has the cluster id
        self.msk_ports = False  # the MSK layout: every broker listens on MSK's own ports
        self._ca: CertificateAuthority | None = None

    @property
    def iam(self) -> IamVerifier:
        if self._iam is None:
            self._iam = _verifier({}, self._iam_permissive)
        return self._iam

    @property
    def iam_policies(self) -> IamPolicies:
        if self._iam_policies is None:
            self._iam_policies = _policies({})
        return self._iam_policies

    @property
    def plaintext_only(self) -> bool:
        return self.kinds == (PLAINTEXT,)

    @property
    def tls(self) -> bool:
        return any(k.tls for k in self.kinds)

    def start(self, data_dir: str) -> None:
        """Make (or load) the local CA when a listener needs TLS."""
        if self.tls and self._ca is None:
            from msklite.security.tls import load_or_create_ca

            self._ca = load_or_create_ca(data_dir)
        if IAM in self.kinds:
            from msklite.security.iam import preload

            preload()

    def stop(self) -> None:
        self._ca = None
        self.users.unbind()

    @property
    def ca_path(self) -> str | None:
        return None if self._ca is None else self._ca.path

    def port(self, kind: ListenerKind, info: BrokerInfo) -> int:
        """Where broker `info` listens for `kind`: its port from an earlier start, else the
        port-offset layout's (0: any free port)."""
        bound = info.ports.get(kind.name)
        if bound is not None:
            return bound
        if self.msk_ports:
            return kind.msk_port
        return info.port + kind.offset if info.port else 0

    def tls_context(
        self, kind: ListenerKind, data_dir: str, info: BrokerInfo
    ) -> ssl.SSLContext | None:
        if not kind.tls:
            return None
        from msklite.security.tls import server_context

        assert self._ca is not None, "start() makes the CA first"
        mtls = self.tls_client_auth and kind is TLS
        return server_context(self._ca, data_dir, info.node_id, _names(info), mtls)

    def principal_of(self, kind: ListenerKind) -> Callable[[object], str | None] | None:
        """How a connection of `kind` names its client before any SASL: from its certificate
        on an mTLS listener; None elsewhere (User:ANONYMOUS)."""
        return tls_principal if self.tls_client_auth and kind is TLS else None

    def client_certificate(self, data_dir: str, name: str) -> tuple[str, str]:
        from msklite.security.tls import issue_client_certificate

        if self._ca is None:
            raise RuntimeError("client certificates need a TLS listener on a started cluster")
        return issue_client_certificate(self._ca, data_dir, name)

    def authorizer(self, controller: Controller) -> Authorizer:
        """The cluster's authorizer: Kafka's StandardAuthorizer over the controller's ACLs,
        with `super.users` (`User:a;User:b`) and `allow.everyone.if.no.acl.found`."""
        configs = controller.configs
        supers = [u.strip() for u in (configs.get("super.users") or "").split(";")]
        acls = AclAuthorizer(
            controller,
            [u for u in supers if u],
            configs.get_bool("allow.everyone.if.no.acl.found"),
        )
        if IAM not in self.kinds:
            return acls
        from msklite.security.iam_policy import IamPolicyAuthorizer, IamResources

        resources = IamResources(controller.cluster_id)
        self._cluster_arn = resources.arn(ResourceType.CLUSTER, "")
        return ByListener(acls, {IAM.name: IamPolicyAuthorizer(self.iam_policies, resources)})

    def _may_connect(self, principal_arn: str) -> bool:
        return self.iam_policies.may_connect(principal_arn, self._cluster_arn)

    def authenticator(
        self, kind: ListenerKind, info: BrokerInfo, configs: BrokerConfigs, clock: Clock
    ) -> Callable[[], SaslAuthenticator] | None:
        servers: dict[str, Callable[[], SaslServer]]
        if kind is IAM:
            from msklite.security.iam import AwsMskIamServer, OAuthBearerIamServer

            hosts = _names(info)
            connect = self._may_connect
            servers = {
                "AWS_MSK_IAM": functools.partial(
                    AwsMskIamServer, self.iam, hosts, clock.now_ms, connect
                ),
                "OAUTHBEARER": functools.partial(
                    OAuthBearerIamServer, self.iam, clock.now_ms, connect
                ),
            }
        elif kind.mechanisms:
            servers = {m: functools.partial(ScramServer, m, self.users) for m in kind.mechanisms}
        else:
            return None
        # imported here: it brings the spec codec, which a plaintext-only start never needs
        from msklite.security.authenticator import SaslAuthenticator

        return functools.partial(
            SaslAuthenticator,
            servers,
            configs.get_int("connection.failed.authentication.delay.ms"),
            configs.get_int("connections.max.reauth.ms"),
            clock.now_ms,
        )


def _verifier(
    credentials: Mapping[str, IamCredential | Mapping[str, str]], permissive: bool
) -> IamVerifier:
    from msklite.security.iam import IamVerifier, parse_credentials

    return IamVerifier(parse_credentials(dict(credentials)), permissive)


def _policies(documents: Mapping[str, Any]) -> IamPolicies:
    from msklite.security.iam_policy import iam_policies_from

    return iam_policies_from(documents)


def _names(info: BrokerInfo) -> list[str]:
    """Every name a client may dial broker `info` by: for its certificate's SANs and the host
    an IAM signature names."""
    return list(dict.fromkeys(n for n in (info.host, info.bind, "localhost", "127.0.0.1") if n))


class ByListener:
    """The authorizer of each listener: IAM policies on the IAM listener, as MSK (where ACLs
    do not apply to IAM identities), the ACLs everywhere else."""

    def __init__(self, default: Authorizer, by_listener: Mapping[str, Authorizer]) -> None:
        self._default = default
        self._by_listener = by_listener

    def _of(self, session: Session) -> Authorizer:
        return self._by_listener.get(session.listener, self._default)

    def allows_everything(self, session: Session) -> bool:
        return self._of(session).allows_everything(session)

    def authorize(self, session: Session, actions: Sequence[Action]) -> list[bool]:
        return self._of(session).authorize(session, actions)

    def authorize_by_resource_type(
        self, session: Session, operation: AclOperation, resource_type: ResourceType
    ) -> bool:
        return self._of(session).authorize_by_resource_type(session, operation, resource_type)
