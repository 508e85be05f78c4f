"""What the everyday commands print: aligned tables, kcat-style record formats, and the
client properties file (`--command-config`) as kafka-python options. Pure functions."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

Row = Mapping[str, object]


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def table(rows: Sequence[Row], columns: Sequence[str]) -> str:
    """Columns padded to their widest cell, headers in upper case, the last column unpadded
    so that lines carry no trailing blanks."""
    cells = [[c.upper().replace("_", "-") for c in columns]]
    cells += [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in cells
    )


def as_json(value: object) -> str:
    return json.dumps(value, sort_keys=True, default=str)


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "0": "\0"}


def _text(value: bytes | None) -> str:
    return "" if value is None else value.decode("utf-8", errors="backslashreplace")


def render(
    fmt: str,
    *,
    topic: str,
    partition: int,
    offset: int,
    timestamp: int,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes | None]],
) -> str:
    """A record through a kcat `-f` format: %t topic, %p partition, %o offset, %T timestamp
    (ms), %k key, %K key length, %s value, %S value length, %h headers (k=v,k=v), %% a percent
    sign; \\n \\t \\r \\\\ \\0 escapes. A length of a null key or value is -1, as kcat prints it."""
    fields = {
        "t": topic,
        "p": str(partition),
        "o": str(offset),
        "T": str(timestamp),
        "k": _text(key),
        "K": str(-1 if key is None else len(key)),
        "s": _text(value),
        "S": str(-1 if value is None else len(value)),
        "h": ",".join(f"{k}={_text(v)}" for k, v in headers),
        "%": "%",
    }
    out: list[str] = []
    i = 0
    while i < len(fmt):
        c = fmt[i]
        nxt = fmt[i + 1] if i + 1 < len(fmt) else ""
        if c == "%" and nxt:
            out.append(fields.get(nxt, c + nxt))
            i += 2
        elif c == "\\" and nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def parse_properties(text: str) -> dict[str, str]:
    """Java properties as kafka-topics.sh's --command-config holds them: `key=value` or
    `key: value` lines, `#`/`!` comments, a trailing backslash continuing a line."""
    out: dict[str, str] = {}
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        pending = ""
        if not line or line[0] in "#!":
            continue
        if line.endswith("\\"):
            pending = line[:-1]
            continue
        cut = min((i for i in (line.find("="), line.find(":")) if i >= 0), default=-1)
        if cut < 0:
            out[line] = ""
        else:
            out[line[:cut].strip()] = line[cut + 1 :].strip()
    return out


_PLAIN = {
    "bootstrap.servers": "bootstrap_servers",
    "client.id": "client_id",
    "security.protocol": "security_protocol",
    "sasl.mechanism": "sasl_mechanism",
    "sasl.username": "sasl_plain_username",
    "sasl.password": "sasl_plain_password",
    "ssl.ca.location": "ssl_cafile",
    "ssl.certificate.location": "ssl_certfile",
    "ssl.key.location": "ssl_keyfile",
    "ssl.key.password": "ssl_password",
}


def _jaas_option(jaas: str, name: str) -> str | None:
    for word in jaas.replace(";", " ").split():
        key, sep, value = word.partition("=")
        if sep and key == name:
            return value.strip('"')
    return None


def client_options(props: Mapping[str, str]) -> dict[str, object]:
    """kafka-python options for Kafka client properties (Java or librdkafka spelling). JKS
    stores are Java-only: a PEM truststore/keystore is taken, anything else is refused."""
    out: dict[str, object] = {}
    for key, value in props.items():
        if key in _PLAIN:
            out[_PLAIN[key]] = value
        elif key == "sasl.jaas.config":
            if "IAMLoginModule" in value:
                out.setdefault("sasl_mechanism", "AWS_MSK_IAM")
            for jaas_key, option in (
                ("username", "sasl_plain_username"),
                ("password", "sasl_plain_password"),
            ):
                found = _jaas_option(value, jaas_key)
                if found is not None:
                    out[option] = found
        elif key == "ssl.endpoint.identification.algorithm":
            out["ssl_check_hostname"] = value.lower() == "https"
        elif key in ("ssl.truststore.location", "ssl.keystore.location"):
            store_type = props.get(key.replace("location", "type"), "JKS").upper()
            if store_type != "PEM":
                raise ValueError(f"{key}: a {store_type} store needs Java; give a PEM file")
            out["ssl_cafile" if "truststore" in key else "ssl_certfile"] = value
        elif key in (
            "ssl.truststore.type",
            "ssl.keystore.type",
            "sasl.client.callback.handler.class",
        ):
            continue  # read with the location above, or Java-only plumbing
        else:
            raise ValueError(f"unsupported client property {key!r}")
    return out
