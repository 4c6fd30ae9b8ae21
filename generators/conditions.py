"""The condition language of conditional sampling: `{column: value}` for equality, `{column: Range(...)}` for a range.

`parse_conditions("Class=1,Amount>100,age<=40")` turns the text a user types into that mapping; the values stay
text and are typed later by the fitted model's codec (`TableCodec.check_conditions`), which knows each column's
kind. Two conditions on one column (`age>=18,age<65`) combine into one range.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from generators.errors import ConditionError

_CLAUSE = re.compile(r"\s*(?P<col>[^<>=!]+?)\s*(?P<op>>=|<=|!=|==|>|<|=)\s*(?P<value>.*?)\s*\Z", re.S)


@dataclass(frozen=True)
class Range:
    """Values between `low` and `high` (None: unbounded on that side), each end inclusive or not."""

    low: Any = None
    high: Any = None
    low_inclusive: bool = True
    high_inclusive: bool = True

    def __post_init__(self) -> None:
        if self.low is None and self.high is None:
            raise ConditionError("a Range needs a low or a high bound (or both); drop the condition to take any value")

    def contains(self, x: Any) -> Any:
        """Whether x (a scalar or an array / Series) lies in the range; nulls never do."""
        ok = True
        if self.low is not None:
            ok = (x >= self.low) if self.low_inclusive else (x > self.low)
        if self.high is not None:
            hi = (x <= self.high) if self.high_inclusive else (x < self.high)
            ok = hi if ok is True else ok & hi
        return ok

    def intersect(self, other: "Range") -> "Range":
        """The range meeting both (bounds compared as given: type them first)."""
        low, low_inc = self.low, self.low_inclusive
        if other.low is not None and (low is None or other.low > low or (other.low == low and not other.low_inclusive)):
            low, low_inc = other.low, other.low_inclusive
        high, high_inc = self.high, self.high_inclusive
        if other.high is not None and (high is None or other.high < high
                                       or (other.high == high and not other.high_inclusive)):
            high, high_inc = other.high, other.high_inclusive
        return Range(low, high, low_inc, high_inc)

    def is_empty(self) -> bool:
        if self.low is None or self.high is None:
            return False
        return self.low > self.high or (self.low == self.high and not (self.low_inclusive and self.high_inclusive))

    def to_text(self, column: str) -> str:
        """The range in the text `parse_conditions` reads (`age>=18,age<65`)."""
        parts = []
        if self.low is not None:
            parts.append(f"{column}{'>=' if self.low_inclusive else '>'}{_text(self.low)}")
        if self.high is not None:
            parts.append(f"{column}{'<=' if self.high_inclusive else '<'}{_text(self.high)}")
        return ",".join(parts)

    def to_dict(self) -> dict:
        """JSON-able form (for bookkeeping): {"low", "high", "low_inclusive", "high_inclusive"}."""
        return {"low": _text(self.low) if self.low is not None else None,
                "high": _text(self.high) if self.high is not None else None,
                "low_inclusive": self.low_inclusive, "high_inclusive": self.high_inclusive}


def _text(v: Any) -> Any:
    if isinstance(v, float) and v == int(v) and abs(v) < 2**53:
        return int(v) if not math.isnan(v) else v
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v


def parse_conditions(text: str | None) -> dict[str, Any]:
    """`"Class=1,Amount>100,age<=40,sex=Male"` -> {"Class": "1", "Amount": Range(low="100", ...), ...}.

    Operators: `=` (or `==`) for equality, `>`, `>=`, `<`, `<=` for ranges; clauses joined by commas. Values stay
    text (the codec types them); several range clauses on one column combine into one Range. ConditionError names
    the clause that does not parse.
    """
    if text is None or not str(text).strip():
        return {}
    out: dict[str, Any] = {}
    for clause in str(text).split(","):
        if not clause.strip():
            raise ConditionError(f"empty clause in conditions {text!r}; join clauses with single commas, e.g. "
                                 "'Class=1,Amount>100'")
        m = _CLAUSE.match(clause)
        if m is None or not m.group("value"):
            raise ConditionError(f"cannot read condition {clause.strip()!r}; write column=value or column>value "
                                 "(operators: = > >= < <=)")
        col, op, value = m.group("col"), m.group("op"), m.group("value")
        if op == "!=":
            raise ConditionError(f"condition {clause.strip()!r}: '!=' is not supported; condition on the value(s) "
                                 "you want instead")
        if op in ("=", "=="):
            cond: Any = value
        else:
            # an unbounded end keeps the default (inclusive) flag, so equal ranges compare equal
            cond = Range(low=value if op[0] == ">" else None, high=value if op[0] == "<" else None,
                         low_inclusive=op != ">", high_inclusive=op != "<")
        if col in out:
            if not (isinstance(out[col], Range) and isinstance(cond, Range)):
                raise ConditionError(f"column {col!r} is conditioned twice in {text!r}; give one value, or range "
                                     "bounds only")
            if (cond.low is not None and out[col].low is not None) or (cond.high is not None
                                                                       and out[col].high is not None):
                raise ConditionError(f"column {col!r} has two lower or two upper bounds in {text!r}; keep one")
            old = out[col]
            cond = Range(low=old.low if old.low is not None else cond.low,
                         high=old.high if old.high is not None else cond.high,
                         low_inclusive=old.low_inclusive if old.low is not None else cond.low_inclusive,
                         high_inclusive=old.high_inclusive if old.high is not None else cond.high_inclusive)
        out[col] = cond
    return out


def format_conditions(conditions: dict[str, Any]) -> str:
    """The text `parse_conditions` reads back (for logs and bookkeeping)."""
    parts = []
    for col, v in conditions.items():
        parts.append(v.to_text(col) if isinstance(v, Range) else f"{col}={_text(v) if v is not None else 'null'}")
    return ",".join(parts)


__all__ = ["Range", "parse_conditions", "format_conditions"]
