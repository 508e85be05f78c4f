"""The wire side of an AWS restJson1 service, driven by the service model botocore ships (the
same file the SDKs are generated from): which operation a method and path name, the request's
members from its path, query string and JSON body, the response's JSON, and errors as the SDKs
parse them (`x-amzn-ErrorType` header, JSON `message`). Handlers see and return dicts keyed by
the model's member names (`ClusterName`), as boto3's parameters are; the wire uses each
member's `locationName` (`clusterName`)."""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import urllib.parse
from collections.abc import Mapping
from typing import Any

from botocore.loaders import Loader
from botocore.model import OperationModel, ServiceModel, Shape


class ApiError(Exception):
    """An error the model declares (`BadRequestException`, `NotFoundException`, ...)."""

    def __init__(self, code: str, message: str, invalid_parameter: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.invalid_parameter = invalid_parameter


def bad_request(message: str, parameter: str | None = None) -> ApiError:
    return ApiError("BadRequestException", message, parameter)


def load_service(name: str, api_version: str) -> ServiceModel:
    return ServiceModel(Loader().load_service_model(name, "service-2", api_version), name)


def path_pattern(op: OperationModel) -> str:
    """The operation's request URI as an aiohttp path pattern (the labels are the same)."""
    return str(op.http["requestUri"]).split("?", 1)[0]


def error_status(service: ServiceModel, code: str) -> int:
    shape = service.shape_for(code)
    return int(shape.metadata.get("error", {}).get("httpStatusCode", 400))


def error_body(error: ApiError) -> dict[str, str]:
    body = {"message": error.message}
    if error.invalid_parameter is not None:
        body["invalidParameter"] = error.invalid_parameter
    return body


# ---- requests ----


def parse_request(
    op: OperationModel,
    labels: Mapping[str, str],
    query: Mapping[str, list[str]],
    body: bytes,
) -> dict[str, Any]:
    """The input members of one request, checked against the model (BadRequestException
    naming the member otherwise)."""
    shape = op.input_shape
    if shape is None:
        return {}
    out: dict[str, Any] = {}
    document: dict[str, Any] = {}
    if body.strip():
        try:
            parsed = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise bad_request("The request body is not valid JSON.") from None
        if not isinstance(parsed, dict):
            raise bad_request("The request body must be a JSON object.")
        document = parsed
    for name, member in shape.members.items():
        wire = member.serialization.get("name", name)
        location = member.serialization.get("location")
        if location == "uri":
            if wire in labels:
                out[name] = urllib.parse.unquote(labels[wire])
        elif location == "querystring":
            values = query.get(wire)
            if values:
                out[name] = _query_value(member, wire, values)
        elif location is None and wire in document:
            value = _from_json(member, document[wire], wire)
            if value is not None:
                out[name] = value
    for name in shape.required_members:
        if name not in out:
            wire = shape.members[name].serialization.get("name", name)
            raise bad_request(f"The request is missing the required parameter {wire}.", wire)
    return out


def _query_value(shape: Shape, wire: str, values: list[str]) -> Any:
    if shape.type_name == "list":
        return [_scalar(shape.member, wire, v) for v in values]
    return _scalar(shape, wire, values[-1])


def _scalar(shape: Shape, wire: str, text: str) -> Any:
    if shape.type_name in ("integer", "long"):
        try:
            value = int(text)
        except ValueError:
            raise bad_request(f"{wire} must be an integer, got {text!r}.", wire) from None
        _check_range(shape, wire, value)
        return value
    if shape.type_name == "boolean":
        if text not in ("true", "false"):
            raise bad_request(f"{wire} must be true or false, got {text!r}.", wire)
        return text == "true"
    return text


def _check_range(shape: Shape, wire: str, value: float) -> None:
    lo, hi = shape.metadata.get("min"), shape.metadata.get("max")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise bad_request(f"{wire} must be between {lo} and {hi}, got {value}.", wire)


def _from_json(shape: Shape, value: Any, wire: str) -> Any:
    if value is None:
        return None
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            raise bad_request(f"{wire} must be an object.", wire)
        out = {}
        for name, member in shape.members.items():
            member_wire = member.serialization.get("name", name)
            if member_wire in value:
                converted = _from_json(member, value[member_wire], member_wire)
                if converted is not None:
                    out[name] = converted
        for name in shape.required_members:
            if name not in out:
                member_wire = shape.members[name].serialization.get("name", name)
                raise bad_request(f"{wire}.{member_wire} is required.", member_wire)
        return out
    if kind == "list":
        if not isinstance(value, list):
            raise bad_request(f"{wire} must be a list.", wire)
        return [_from_json(shape.member, v, wire) for v in value]
    if kind == "map":
        if not isinstance(value, dict):
            raise bad_request(f"{wire} must be an object.", wire)
        return {str(k): _from_json(shape.value, v, wire) for k, v in value.items()}
    if kind == "string":
        if not isinstance(value, str):
            raise bad_request(f"{wire} must be a string.", wire)
        lo, hi = shape.metadata.get("min"), shape.metadata.get("max")
        if (lo is not None and len(value) < lo) or (hi is not None and len(value) > hi):
            raise bad_request(f"{wire} must be {lo}-{hi} characters long.", wire)
        if shape.enum and value not in shape.enum:
            raise bad_request(f"{wire} must be one of {', '.join(shape.enum)}.", wire)
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise bad_request(f"{wire} must be true or false.", wire)
        return value
    if kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            raise bad_request(f"{wire} must be an integer.", wire)
        _check_range(shape, wire, value)
        return value
    if kind in ("double", "float"):
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise bad_request(f"{wire} must be a number.", wire)
        return float(value)
    if kind == "blob":
        if not isinstance(value, str):
            raise bad_request(f"{wire} must be base64 text.", wire)
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise bad_request(f"{wire} is not valid base64.", wire) from None
    if kind == "timestamp":
        if not isinstance(value, int | float | str):
            raise bad_request(f"{wire} must be a timestamp.", wire)
        return value
    raise bad_request(f"{wire} has a type msklite does not read ({kind}).", wire)


# ---- responses ----


def to_json(shape: Shape, value: Any) -> Any:
    """A member-name dict (or value) as the wire JSON of `shape`; members the shape does not
    have are left out, as are None values."""
    kind = shape.type_name
    if kind == "structure":
        out = {}
        for name, member in shape.members.items():
            if value.get(name) is not None:
                out[member.serialization.get("name", name)] = to_json(member, value[name])
        return out
    if kind == "list":
        return [to_json(shape.member, v) for v in value]
    if kind == "map":
        return {k: to_json(shape.value, v) for k, v in value.items()}
    if kind == "timestamp":
        if shape.serialization.get("timestampFormat") == "unixTimestamp" or (
            shape.metadata.get("timestampFormat") == "unixTimestamp"
        ):
            return value
        return iso8601(float(value))
    if kind == "blob":
        return base64.b64encode(value).decode("ascii")
    if kind in ("double", "float"):
        return float(value)
    return value


def iso8601(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
