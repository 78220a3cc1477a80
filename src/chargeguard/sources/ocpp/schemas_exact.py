"""The exact validator: one OCPP JSON schema compiled into nested checks that name the first rule broken.

It implements the JSON Schema draft-04/draft-06 keywords the OCPP schemas use (``type``, ``properties``,
``required``, ``additionalProperties``, ``items``, ``minItems``, ``maxItems``, ``maxLength``, ``enum``,
``minimum``, ``maximum``, ``multipleOf``, ``format`` and local ``$ref``) with ``jsonschema``'s semantics:
``bool`` is not a number; a float with an integral value (``1.0``) is an ``integer`` from draft-06 on but
not in draft-04; a ``$ref`` ignores its sibling keywords. Formats and ``multipleOf`` are those of
``schemas_formats``. A keyword outside that set makes compilation fail (``SchemaCompileError``) instead of
being silently ignored.

Error descriptions name the JSON path and the rule, never the offending value, nor an unexpected property
name (both come from the sender and may carry a driver token).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeGuard

from chargeguard.errors import ChargeguardError
from chargeguard.sources.ocpp.schemas_formats import is_multiple_of, matches_format


class Failure:
    """The first rule a value broke; ``path`` is filled in reverse while the failure travels up to the root."""

    __slots__ = ("path", "rule")

    def __init__(self, rule: str) -> None:
        self.rule = rule
        self.path: list[str | int] = []

    def describe(self) -> str:
        """``$.meterValue[0].timestamp: not an RFC 3339 date-time``."""
        return f"{render_path(reversed(self.path))}: {self.rule}"


Check = Callable[[object], Failure | None]
"""``check(instance)`` -> None when valid, else the ``Failure`` (paths are built only on failure)."""

ANNOTATIONS = frozenset(
    {"description", "javaType", "comment", "title", "$id", "$schema", "default", "definitions"}
)
SUPPORTED = ANNOTATIONS | {
    "$ref",
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "additionalItems",
    "minItems",
    "maxItems",
    "maxLength",
    "enum",
    "minimum",
    "maximum",
    "multipleOf",
    "format",
}
_TYPE_NAMES = {
    "object": "an object",
    "array": "an array",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
}
_FORMAT_NAMES = {"date-time": "an RFC 3339 date-time", "uri": "a URI"}


class SchemaCompileError(ChargeguardError):
    """A schema uses a construct this validator does not implement (a bug to fix, never a payload problem)."""


def render_path(path: Iterable[str | int]) -> str:
    """``("meterValue", 0, "timestamp")`` -> ``$.meterValue[0].timestamp``."""
    return "$" + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)


def schema_draft(schema: Mapping[str, Any]) -> int:
    """The JSON Schema draft number a schema declares (4 or 6; draft-04 when it declares none)."""
    declared = str(schema.get("$schema", ""))
    return 6 if "draft-06" in declared else 4


def is_integer(value: object, draft: int) -> bool:
    """JSON Schema ``integer`` as ``jsonschema`` decides it for the draft."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return draft >= 6 and isinstance(value, float) and value.is_integer()


def is_number(value: object) -> TypeGuard[int | float]:
    """JSON Schema ``number``: an int or a float, never a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


_TYPE_TESTS: dict[str, Callable[[object, int], bool]] = {
    "object": lambda value, _draft: isinstance(value, dict),
    "array": lambda value, _draft: isinstance(value, list),
    "string": lambda value, _draft: isinstance(value, str),
    "integer": is_integer,
    "number": lambda value, _draft: is_number(value),
    "boolean": lambda value, _draft: isinstance(value, bool),
}


class ExactCompiler:
    """Compiles the nodes of one root schema; ``$ref`` targets are compiled once and shared."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root
        self.draft = schema_draft(root)
        self._refs: dict[str, Check] = {}

    def compile(self, node: Mapping[str, Any]) -> Check:
        if "$ref" in node:
            return self._ref(str(node["$ref"]))
        unknown = set(node) - SUPPORTED
        if unknown:
            raise SchemaCompileError(f"unsupported schema keywords {sorted(unknown)}")
        type_name = node.get("type")
        if type_name in _TYPE_TESTS:
            # one closure per typed node: keywords of other types are no-ops once the type holds
            return self._typed(node, str(type_name))
        checks: list[Check] = []
        if type_name is not None:
            checks.append(self._type(str(type_name)))
        if "enum" in node:
            checks.append(_enum(node["enum"]))
        if "maxLength" in node:
            checks.append(_max_length(int(node["maxLength"])))
        if "format" in node:
            checks.append(_format(str(node["format"])))
        if "minimum" in node or "maximum" in node:
            checks.append(_bounds(node.get("minimum"), node.get("maximum")))
        if "multipleOf" in node:
            checks.append(_multiple_of(node["multipleOf"]))
        if "properties" in node or "required" in node or node.get("additionalProperties") is False:
            checks.append(self._object(node))
        if "items" in node or "minItems" in node or "maxItems" in node:
            checks.append(self._array(node))
        if not checks:
            return _anything
        if len(checks) == 1:
            return checks[0]
        return _all_of(tuple(checks))

    def resolve(self, ref: str) -> Mapping[str, Any]:
        """The node a local ``#/definitions/Name`` reference points to."""
        if not ref.startswith("#/"):
            raise SchemaCompileError("only local $ref are supported")
        node: Any = self.root
        for part in ref[2:].split("/"):
            if not isinstance(node, Mapping) or part not in node:
                raise SchemaCompileError("dangling $ref")
            node = node[part]
        if not isinstance(node, Mapping):
            raise SchemaCompileError("a $ref must point to a schema object")
        return node

    def _ref(self, ref: str) -> Check:
        if ref not in self._refs:
            slot: list[Check] = []
            # a placeholder first, so a recursive reference compiles to a call of the finished check
            self._refs[ref] = lambda instance: slot[0](instance)
            compiled = self.compile(self.resolve(ref))
            slot.append(compiled)
            self._refs[ref] = compiled
        return self._refs[ref]

    def _typed(self, node: Mapping[str, Any], type_name: str) -> Check:
        if type_name == "object":
            return self._object(node, typed=True)
        if type_name == "array":
            return self._array(node, typed=True)
        if type_name == "string":
            return _string(node)
        if type_name in ("integer", "number"):
            return _numeric(node, type_name, self.draft)
        return self._type(type_name)

    def _type(self, type_name: str) -> Check:
        if type_name not in _TYPE_TESTS:
            raise SchemaCompileError(f"unsupported type {type_name!r}")
        test = _TYPE_TESTS[type_name]
        draft = self.draft
        message = f"not {_TYPE_NAMES[type_name]}"

        def check_type(instance: object) -> Failure | None:
            return None if test(instance, draft) else Failure(message)

        return check_type

    def _object(self, node: Mapping[str, Any], *, typed: bool = False) -> Check:
        properties = {str(k): self.compile(v) for k, v in dict(node.get("properties", {})).items()}
        required = tuple(str(name) for name in node.get("required", ()))
        closed = node.get("additionalProperties") is False
        if node.get("additionalProperties") not in (None, True, False):
            raise SchemaCompileError("additionalProperties must be a boolean")
        known = frozenset(properties)

        def check_object(instance: object) -> Failure | None:
            if not isinstance(instance, dict):
                return Failure("not an object") if typed else None
            for name in required:
                if name not in instance:
                    missing = Failure("required property missing")
                    missing.path.append(name)
                    return missing
            for name, check in properties.items():
                if name in instance:
                    failure = check(instance[name])
                    if failure is not None:
                        failure.path.append(name)
                        return failure
            if closed:
                extra = sum(1 for key in instance if key not in known)
                if extra:
                    noun = "property" if extra == 1 else "properties"
                    return Failure(f"{extra} {noun} not allowed by the schema")
            return None

        return check_object

    def _array(self, node: Mapping[str, Any], *, typed: bool = False) -> Check:
        items = node.get("items")
        if items is not None and not isinstance(items, Mapping):
            raise SchemaCompileError("only a single schema is supported for items")
        item_check = self.compile(items) if items is not None else _anything
        min_items = node.get("minItems")
        max_items = node.get("maxItems")

        def check_array(instance: object) -> Failure | None:
            if not isinstance(instance, list):
                return Failure("not an array") if typed else None
            if min_items is not None and len(instance) < min_items:
                return Failure(f"fewer than {min_items} items")
            if max_items is not None and len(instance) > max_items:
                return Failure(f"more than {max_items} items")
            for index, item in enumerate(instance):
                failure = item_check(item)
                if failure is not None:
                    failure.path.append(index)
                    return failure
            return None

        return check_array


def _string(node: Mapping[str, Any]) -> Check:
    """A ``"type": "string"`` node: type, enum, maxLength and format in one check."""
    enum = node.get("enum")
    if enum is not None and not all(isinstance(value, str) for value in enum):
        raise SchemaCompileError("only string enums are supported")
    allowed = frozenset(enum) if enum is not None else None
    limit = int(node["maxLength"]) if "maxLength" in node else None
    format_name = str(node.get("format", ""))
    checked_format = format_name if format_name in _FORMAT_NAMES else None
    format_message = f"not {_FORMAT_NAMES[format_name]}" if checked_format else ""

    def check_string(instance: object) -> Failure | None:
        if not isinstance(instance, str):
            return Failure("not a string")
        if allowed is not None and instance not in allowed:
            return Failure("not one of the allowed values")
        if limit is not None and len(instance) > limit:
            return Failure(f"longer than {limit} characters")
        if checked_format is not None and not matches_format(checked_format, instance):
            return Failure(format_message)
        return None

    return check_string


def _numeric(node: Mapping[str, Any], type_name: str, draft: int) -> Check:
    """An ``integer`` or ``number`` node: type, minimum, maximum and multipleOf in one check."""
    if "enum" in node:
        raise SchemaCompileError("only string enums are supported")
    integer = type_name == "integer"
    message = f"not {_TYPE_NAMES[type_name]}"
    bounds = _bounds(node.get("minimum"), node.get("maximum"))
    multiple = _multiple_of(node["multipleOf"]) if "multipleOf" in node else None

    def check_numeric(instance: object) -> Failure | None:
        if not (is_integer(instance, draft) if integer else is_number(instance)):
            return Failure(message)
        failure = bounds(instance)
        if failure is None and multiple is not None:
            failure = multiple(instance)
        return failure

    return check_numeric


def _anything(instance: object) -> Failure | None:
    return None


def _all_of(checks: tuple[Check, ...]) -> Check:
    def check_all(instance: object) -> Failure | None:
        for check in checks:
            failure = check(instance)
            if failure is not None:
                return failure
        return None

    return check_all


def _enum(values: list[object]) -> Check:
    if not all(isinstance(value, str) for value in values):
        raise SchemaCompileError("only string enums are supported")
    allowed = frozenset(values)

    def check_enum(instance: object) -> Failure | None:
        if isinstance(instance, str) and instance in allowed:
            return None
        return Failure("not one of the allowed values")

    return check_enum


def _max_length(limit: int) -> Check:
    def check_max_length(instance: object) -> Failure | None:
        if isinstance(instance, str) and len(instance) > limit:
            return Failure(f"longer than {limit} characters")
        return None

    return check_max_length


def _format(name: str) -> Check:
    if name not in _FORMAT_NAMES:
        return _anything  # unknown formats are annotations in JSON Schema
    message = f"not {_FORMAT_NAMES[name]}"

    def check_format(instance: object) -> Failure | None:
        if isinstance(instance, str) and not matches_format(name, instance):
            return Failure(message)
        return None

    return check_format


def _bounds(minimum: object, maximum: object) -> Check:
    for bound in (minimum, maximum):
        if bound is not None and not is_number(bound):
            raise SchemaCompileError("minimum/maximum must be numbers")
    low = minimum if is_number(minimum) else None
    high = maximum if is_number(maximum) else None

    def check_bounds(instance: object) -> Failure | None:
        if not is_number(instance):
            return None
        if low is not None and instance < low:
            return Failure(f"below the minimum {low:g}")
        if high is not None and instance > high:
            return Failure(f"above the maximum {high:g}")
        return None

    return check_bounds


def _multiple_of(divisor: object) -> Check:
    if not is_number(divisor):
        raise SchemaCompileError("multipleOf must be a number")
    step = divisor

    def check_multiple_of(instance: object) -> Failure | None:
        if is_number(instance) and not is_multiple_of(instance, step):
            return Failure(f"not a multiple of {step:g}")
        return None

    return check_multiple_of


def compile_exact(schema: Mapping[str, Any]) -> Callable[[object], str | None]:
    """Compile a root schema into its exact validator: payload -> None, or ``"<JSON path>: <rule broken>"``."""
    check = ExactCompiler(schema).compile(schema)

    def validate(payload: object) -> str | None:
        failure = check(payload)
        return None if failure is None else failure.describe()

    return validate
