"""The base of every message an entity sends: up, down, or to its peers.

A message is a value. It is frozen, so a message handed on cannot change under
its sender or its receiver, and it is strict about its fields: a field it does
not declare is an error, not ignored, so a misspelt field fails where it is
written. Every layer's service messages and the reference implementations'
peer messages derive from :class:`Message`.

Validation costs a few microseconds a message, a tenth of a busy run's time.
:meth:`Message.trusted` builds a message without it, for the reference
layers' hot paths, where every field is a value their own code computed from
messages and parameters that were validated on their way in. Anything built by
other code (a user's layer, a scenario, a test) is validated as before, and
each layer's conformance suite validates what it is sent whoever built it.
With :func:`verifying_trusted` on, every trusted message is also built the
validating way and the two are compared (field order, values and their exact
types); the tests run whole scenarios so.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Self

from pydantic import BaseModel, ConfigDict
from pydantic_core import PydanticUndefined

__all__ = ["Message", "TrustedMismatch", "verifying_trusted"]


class TrustedMismatch(AssertionError):
    """A message built by :meth:`Message.trusted` differs from the validated one."""


_REQUIRED = object()  # a required field's place in a template, until the caller's value fills it
# class -> {field name: default or _REQUIRED}, in the order of the class's fields
_TEMPLATES: dict[type, dict[str, Any]] = {}
_verify = False
_new = object.__new__
_set = object.__setattr__


class Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @classmethod
    def trusted(cls, **fields: Any) -> Self:
        """The message with ``fields``, built without validating them (see the module
        docstring): the caller vouches that each value is one validation would keep as it
        is, of the field's exact type (an ``int``, not a numpy integer; a nested message,
        not a dict). Omitted fields take their defaults, as with validation."""
        template = _TEMPLATES.get(cls)
        if template is None:
            template = _template(cls)
        values = template.copy()
        values.update(fields)  # keeps the fields in the class's order, as validation does
        msg = _new(cls)
        _set(msg, "__dict__", values)
        _set(msg, "__pydantic_fields_set__", set(fields))
        _set(msg, "__pydantic_extra__", None)
        _set(msg, "__pydantic_private__", None)
        if _verify:
            _compare(msg, cls(**fields))
        return msg


def _template(cls: type[Message]) -> dict[str, Any]:
    decorators = cls.__pydantic_decorators__
    if cls.__private_attributes__ or cls.__pydantic_post_init__ or decorators.model_validators or decorators.field_validators:
        # validation would run code of the class's own: only the validating constructor is right
        raise TypeError(f"{cls.__name__} has validators or private attributes; build it with {cls.__name__}(...)")
    template: dict[str, Any] = {}
    for name, field in cls.model_fields.items():
        if field.default_factory is not None:
            raise TypeError(f"{cls.__name__}.{name} has a default factory; build it with {cls.__name__}(...)")
        template[name] = _REQUIRED if field.default is PydanticUndefined else field.default
    _TEMPLATES[cls] = template
    return template


def _compare(trusted: Message, validated: Message) -> None:
    fast, slow = trusted.__dict__, validated.__dict__
    if list(fast) != list(slow):
        raise TrustedMismatch(f"{type(trusted).__name__}: fields {list(fast)} against {list(slow)}")
    for name, value in slow.items():
        _compare_value(f"{type(trusted).__name__}.{name}", fast[name], value)
    if trusted.__pydantic_fields_set__ != validated.__pydantic_fields_set__:
        raise TrustedMismatch(f"{type(trusted).__name__}: fields set differ")


def _compare_value(where: str, fast: Any, slow: Any) -> None:
    if type(fast) is not type(slow):
        raise TrustedMismatch(f"{where}: {type(fast).__name__} where validation gives {type(slow).__name__}")
    if isinstance(slow, Message):
        _compare(fast, slow)
    elif isinstance(slow, tuple | list):
        if len(fast) != len(slow):
            raise TrustedMismatch(f"{where}: {len(fast)} items where validation gives {len(slow)}")
        for i, (f, s) in enumerate(zip(fast, slow)):
            _compare_value(f"{where}[{i}]", f, s)
    elif fast != slow:
        raise TrustedMismatch(f"{where}: {fast!r} where validation gives {slow!r}")


@contextmanager
def verifying_trusted() -> Iterator[None]:
    """While on, every :meth:`Message.trusted` also validates and compares (for tests)."""
    global _verify
    before, _verify = _verify, True
    try:
        yield
    finally:
        _verify = before
