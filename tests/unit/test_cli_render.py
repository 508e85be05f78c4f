"""The everyday commands' output: aligned tables, kcat-style formats, client properties."""

from __future__ import annotations

import pytest

from msklite.cli.render import client_options, parse_properties, render, table


def test_table_pads_columns_to_the_widest_cell_without_trailing_blanks() -> None:
    text = table(
        [
            {"name": "orders", "partitions": 12, "isr": [1, 2, 3]},
            {"name": "a", "partitions": 1, "isr": None},
        ],
        ["name", "partitions", "isr"],
    )
    assert text.splitlines() == [
        "NAME    PARTITIONS  ISR",
        "orders  12          1,2,3",
        "a       1           -",
    ]


def test_table_of_no_rows_is_its_header() -> None:
    assert table([], ["current_offset", "lag"]) == "CURRENT-OFFSET  LAG"


def _record(fmt: str, key: bytes | None = b"k", value: bytes | None = b"v") -> str:
    return render(
        fmt,
        topic="t",
        partition=2,
        offset=41,
        timestamp=1700000000000,
        key=key,
        value=value,
        headers=[("h1", b"x"), ("h2", None)],
    )


def test_format_string_fields_and_escapes() -> None:
    assert _record("%t/%p@%o %T %k=%s (%K,%S) [%h] 100%%\\n") == (
        "t/2@41 1700000000000 k=v (1,1) [h1=x,h2=] 100%\n"
    )
    assert _record("%k|%s|%K|%S\\t", key=None, value=None) == "||-1|-1\t"
    # an unknown directive and a lone trailing percent sign are printed as they are
    assert _record("%z %") == "%z %"


def test_properties_file_as_kafka_tools_read_it() -> None:
    props = parse_properties(
        "# comment\n! also a comment\nsecurity.protocol = SASL_SSL\n"
        "sasl.mechanism: SCRAM-SHA-512\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\\n"
        '   username="alice" password="s3cret";\n'
    )
    assert props["security.protocol"] == "SASL_SSL"
    assert props["sasl.mechanism"] == "SCRAM-SHA-512"
    assert client_options(props) == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "alice",
        "sasl_plain_password": "s3cret",
    }


def test_client_options_for_tls_and_iam() -> None:
    assert client_options(
        {
            "security.protocol": "SSL",
            "ssl.truststore.location": "/ca.pem",
            "ssl.truststore.type": "PEM",
            "ssl.endpoint.identification.algorithm": "",
        }
    ) == {"security_protocol": "SSL", "ssl_cafile": "/ca.pem", "ssl_check_hostname": False}
    iam = client_options(
        {"sasl.jaas.config": "software.amazon.msk.auth.iam.IAMLoginModule required;"}
    )
    assert iam == {"sasl_mechanism": "AWS_MSK_IAM"}


def test_client_options_refuse_what_they_cannot_honour() -> None:
    with pytest.raises(ValueError, match="a JKS store needs Java"):
        client_options({"ssl.truststore.location": "/kafka.client.truststore.jks"})
    with pytest.raises(ValueError, match=r"unsupported client property 'linger\.mss'"):
        client_options({"linger.mss": "5"})
