"""A check of MSK API responses against the `kafka` service model botocore ships: every member
the wire JSON has is one the output shape declares (by its locationName), of the declared type
and enum, and every required member is there."""

from __future__ import annotations

import base64
import datetime
import json
from typing import Any

from botocore.model import Shape


def problems(shape: Shape, value: Any, where: str = "$") -> list[str]:
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            return [f"{where}: {shape.name} is an object, got {value!r}"]
        out = []
        by_wire = {m.serialization.get("name", n): (n, m) for n, m in shape.members.items()}
        for key, item in value.items():
            if key not in by_wire:
                out.append(f"{where}.{key}: not a member of {shape.name}")
                continue
            out += problems(by_wire[key][1], item, f"{where}.{key}")
        present = {by_wire[k][0] for k in value if k in by_wire}
        out += [
            f"{where}: required member {n} of {shape.name} missing"
            for n in shape.required_members
            if n not in present
        ]
        return out
    if kind == "list":
        if not isinstance(value, list):
            return [f"{where}: a list, got {value!r}"]
        return [p for i, v in enumerate(value) for p in problems(shape.member, v, f"{where}[{i}]")]
    if kind == "map":
        if not isinstance(value, dict):
            return [f"{where}: a map, got {value!r}"]
        return [p for k, v in value.items() for p in problems(shape.value, v, f"{where}[{k}]")]
    if kind == "string":
        if not isinstance(value, str):
            return [f"{where}: a string, got {value!r}"]
        if shape.enum and value not in shape.enum:
            return [f"{where}: {value!r} is not one of {shape.enum}"]
        return []
    if kind in ("integer", "long"):
        ok = isinstance(value, int) and not isinstance(value, bool)
        return [] if ok else [f"{where}: an integer, got {value!r}"]
    if kind in ("double", "float"):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return [] if ok else [f"{where}: a number, got {value!r}"]
    if kind == "boolean":
        return [] if isinstance(value, bool) else [f"{where}: a boolean, got {value!r}"]
    if kind == "timestamp":
        if shape.serialization.get("timestampFormat", "iso8601") == "iso8601" and (
            isinstance(value, str)
        ):
            try:
                datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                return [f"{where}: not an ISO 8601 timestamp: {value!r}"]
            return []
        return [] if isinstance(value, int | float) else [f"{where}: a timestamp, got {value!r}"]
    if kind == "blob":
        try:
            base64.b64decode(value, validate=True)
        except (TypeError, ValueError):
            return [f"{where}: not base64: {value!r}"]
        return []
    return [f"{where}: unchecked type {kind}"]


class ResponseChecker:
    """A botocore `after-call` hook: checks every response body of a client against its
    operation's output shape (error bodies against the error shape their header names)."""

    def __init__(self) -> None:
        self.checked: list[str] = []
        self.problems: list[str] = []

    def __call__(self, http_response: Any, model: Any, **_: Any) -> None:
        self.checked.append(model.name)
        body = http_response.content
        if http_response.status_code >= 300:
            code = http_response.headers.get("x-amzn-ErrorType", "")
            declared = {s.name: s for s in model.error_shapes}
            if code not in declared:
                self.problems.append(f"{model.name}: error {code!r} not declared")
                return
            shape = declared[code]
        else:
            shape = model.output_shape
        if shape is None:
            if body:
                self.problems.append(f"{model.name}: a body where the model has none")
            return
        try:
            document = json.loads(body)
        except ValueError:
            self.problems.append(f"{model.name}: body is not JSON: {body[:200]!r}")
            return
        self.problems += [f"{model.name}: {p}" for p in problems(shape, document)]
