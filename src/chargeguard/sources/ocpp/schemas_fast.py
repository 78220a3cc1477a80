"""The fast validator: one OCPP JSON schema compiled into msgspec types, checked with ``msgspec.convert``.

The compiled type accepts a payload only if the schema does (a subset, never more): objects become Structs
(``forbid_unknown_fields`` where ``additionalProperties`` is false, optional fields default to UNSET so an
explicit ``null`` is refused), enums become ``Literal``, strings, arrays and numbers carry their
``msgspec.Meta`` bounds, formats are the anchored patterns of ``schemas_formats``. Where msgspec's semantics
differ from JSON Schema it is stricter, and the caller asks the exact validator before reporting anything:
``1.0`` is refused for ``integer`` (draft-06 accepts it), a ``multipleOf`` node is a marker type checked by
a ``dec_hook`` with the exact check. Only Python lists count as JSON arrays for the exact validator; msgspec
also takes tuples, which JSON decoders never produce.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

import msgspec

from chargeguard.sources.ocpp.schemas_exact import ANNOTATIONS, ExactCompiler, SchemaCompileError
from chargeguard.sources.ocpp.schemas_formats import FORMAT_PATTERNS


class CheckedValue:
    """Base of marker types whose value the exact check decides (via ``dec_hook``)."""

    check: ClassVar[Any]
    instance: ClassVar[CheckedValue]


def dec_hook(target: type, value: object) -> object:
    """msgspec hook: a ``CheckedValue`` marker passes when its exact check does."""
    if isinstance(target, type) and issubclass(target, CheckedValue) and target.check(value) is None:
        return target.instance
    raise ValueError("invalid")


class FastCompiler:
    """Builds the msgspec type of one root schema; ``$ref`` targets become one shared type each."""

    def __init__(self, root: Mapping[str, Any], name: str) -> None:
        self.root = root
        self.name = name
        self.exact = ExactCompiler(root)
        self._refs: dict[str, Any] = {}
        self._building: set[str] = set()
        self.needs_hook = False
        """Whether the type holds ``CheckedValue`` markers (``dec_hook`` costs ~1 us a call: pass it only then)."""

    def compile(self, node: Mapping[str, Any], hint: str) -> Any:
        if "$ref" in node:
            return self._ref(str(node["$ref"]))
        if "multipleOf" in node or ("enum" in node and node.get("type") != "string"):
            return self._checked(node, hint)
        type_name = node.get("type")
        if type_name is None:
            constrained = set(node) - ANNOTATIONS
            if constrained:
                return self._checked(node, hint)
            return Any
        if type_name == "object":
            return self._object(node, hint)
        if type_name == "array":
            return self._array(node, hint)
        if type_name == "string":
            return self._string(node)
        if type_name in ("integer", "number"):
            return self._number(node, integer=type_name == "integer")
        if type_name == "boolean":
            return bool
        raise SchemaCompileError(f"unsupported type {type_name!r}")

    def _ref(self, ref: str) -> Any:
        if ref in self._refs:
            return self._refs[ref]
        if ref in self._building:
            raise SchemaCompileError("recursive $ref")  # the caller falls back to the exact validator
        self._building.add(ref)
        compiled = self.compile(self.exact.resolve(ref), ref.rsplit("/", 1)[-1])
        self._building.discard(ref)
        self._refs[ref] = compiled
        return compiled

    def _checked(self, node: Mapping[str, Any], hint: str) -> type[CheckedValue]:
        check = self.exact.compile(node)
        self.needs_hook = True
        marker: type[CheckedValue] = type(f"{hint}Checked", (CheckedValue,), {"check": staticmethod(check)})
        marker.instance = marker()
        return marker

    def _object(self, node: Mapping[str, Any], hint: str) -> Any:
        unsupported = set(node) - {*ANNOTATIONS, "type", "properties", "required"}
        unsupported.discard("additionalProperties")
        if unsupported or node.get("additionalProperties") not in (None, True, False):
            raise SchemaCompileError(f"unsupported object keywords {sorted(unsupported)}")
        properties: dict[str, Any] = dict(node.get("properties", {}))
        required = [str(name) for name in node.get("required", ())]
        closed = node.get("additionalProperties") is False
        if not properties and not required and not closed:
            return dict[str, Any]
        fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
        rename: dict[str, str] = {}
        names = list(properties) + [name for name in required if name not in properties]
        for index, name in enumerate(names):
            field = f"f{index}"
            rename[field] = name
            field_type = (
                self.compile(properties[name], name[:1].upper() + name[1:]) if name in properties else Any
            )
            if name in required:
                fields.append((field, field_type))
            else:
                fields.append((field, field_type | msgspec.UnsetType, msgspec.UNSET))
        return msgspec.defstruct(
            hint or self.name,
            fields,
            kw_only=True,
            forbid_unknown_fields=closed,
            rename=rename,
            gc=False,
        )

    def _array(self, node: Mapping[str, Any], hint: str) -> Any:
        items = node.get("items")
        if items is not None and not isinstance(items, Mapping):
            raise SchemaCompileError("only a single schema is supported for items")
        item_type = self.compile(items, hint) if items is not None else Any
        meta = _meta(min_length=node.get("minItems"), max_length=node.get("maxItems"))
        return list[item_type] if meta is None else Annotated[list[item_type], meta]  # type: ignore[valid-type]

    def _string(self, node: Mapping[str, Any]) -> Any:
        pattern = FORMAT_PATTERNS.get(str(node["format"])) if "format" in node else None
        max_length = node.get("maxLength")
        if "enum" in node:
            values = [value for value in node["enum"] if isinstance(value, str)]
            if len(values) != len(node["enum"]):
                raise SchemaCompileError("only string enums are supported")
            checked = self.exact.compile(node)
            values = [value for value in values if checked(value) is None]
            if not values:
                return self._checked(node, "Enum")
            return Literal[tuple(values)]
        meta = _meta(max_length=max_length, pattern=pattern)
        return str if meta is None else Annotated[str, meta]

    def _number(self, node: Mapping[str, Any], *, integer: bool) -> Any:
        minimum, maximum = node.get("minimum"), node.get("maximum")
        if integer:
            low = math.ceil(minimum) if minimum is not None else None
            high = math.floor(maximum) if maximum is not None else None
            meta = _meta(ge=low, le=high)
            return int if meta is None else Annotated[int, meta]
        meta = _meta(ge=minimum, le=maximum)
        return float if meta is None else Annotated[float, meta]


def _meta(**constraints: Any) -> msgspec.Meta | None:
    given = {key: value for key, value in constraints.items() if value is not None}
    return msgspec.Meta(**given) if given else None


class FastType(msgspec.Struct, frozen=True):
    """A compiled schema: ``accepts(payload)`` is True only for payloads the schema accepts."""

    type: Any
    needs_hook: bool

    def accepts(self, payload: object) -> bool:
        """Whether msgspec converts ``payload`` to the type; any refusal (or absurd nesting) is False."""
        try:
            if self.needs_hook:
                msgspec.convert(payload, self.type, dec_hook=dec_hook)
            else:
                msgspec.convert(payload, self.type)
        except Exception:
            return False
        return True


def compile_fast(schema: Mapping[str, Any], name: str) -> FastType:
    """The msgspec type for a root schema (raises ``SchemaCompileError`` when it cannot be expressed)."""
    ExactCompiler(schema).compile(schema)  # refuses keywords neither validator implements
    compiler = FastCompiler(schema, name)
    compiled = compiler.compile(schema, name)
    return FastType(type=compiled, needs_hook=compiler.needs_hook)
