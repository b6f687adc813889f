"""Building pydantic models from values already known to be valid, on hot paths.

`trusted(cls, values)` is `cls.model_construct(**values)` without its per-field alias and
default handling, which costs more than the rest of a fact's trip through the gate's
bookkeeping: the instance gets exactly `values` (every field of `cls`, in any order) and
nothing is checked. Only for values the caller has validated or built from validated
models; anything that may be wrong goes through `model_validate`, whose errors callers
report.
"""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)

_set = object.__setattr__


def trusted(cls: type[M], values: dict[str, Any]) -> M:
    """An instance of `cls` holding `values` (all its fields), unvalidated. `cls` has no
    private attributes, no extra fields kept and no post-init hook (as `model_construct`
    would leave them, these stay unset)."""
    m = cls.__new__(cls)
    _set(m, "__dict__", values)
    _set(m, "__pydantic_fields_set__", set(values))
    _set(m, "__pydantic_extra__", None)
    _set(m, "__pydantic_private__", None)
    return m


_new_object = object.__new__
_UNKNOWN_SAFETY = uuid.SafeUUID.unknown


def trusted_uuid(value: int) -> uuid.UUID:
    """`uuid.UUID(int=value)` for a 128-bit `value` the caller made (its version and
    variant bits set), without the constructor's argument handling."""
    u = _new_object(uuid.UUID)
    _set(u, "int", value)
    _set(u, "is_safe", _UNKNOWN_SAFETY)
    return u
