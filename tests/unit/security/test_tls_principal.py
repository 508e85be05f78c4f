"""The mTLS principal: Kafka's default, the subject in RFC 2253 order."""

from __future__ import annotations

from msklite.security.settings import tls_principal


def test_subject_most_specific_first() -> None:
    # as ssl's getpeercert() gives it: the RDNs in certificate order (least specific first)
    cert = {
        "subject": (
            (("countryName", "US"),),
            (("organizationName", "Example"),),
            (("organizationalUnitName", "Payments"),),
            (("commonName", "orders-app"),),
        )
    }
    assert tls_principal(cert) == "User:CN=orders-app,OU=Payments,O=Example,C=US"


def test_no_certificate_is_no_principal() -> None:
    assert tls_principal(None) is None
    assert tls_principal({}) is None
