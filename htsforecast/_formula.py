"""Parser for hierarchy formulas such as ``"(state / county) * floor"``.

Grammar (fable's ``aggregate_key``)::

    expr  := term ("*" term)*          crossing
    term  := atom ("/" atom)*          nesting (left associative)
    atom  := NAME | "(" expr ")"

Semantics: a formula denotes a set of *levels*, each a set of key columns.

- ``NAME``  -> ``{∅, {NAME}}``
- ``A * B`` -> ``{a ∪ b : a ∈ L(A), b ∈ L(B)}``
- ``A / B`` -> ``L(A) ∪ {cols(A) ∪ b : b ∈ L(B)}``

so ``state / county`` gives total, state and state/county, and ``(state / county) * floor`` gives
those three crossed with ``{∅, floor}``: six levels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from htsforecast.errors import FormulaError

__all__ = ["ParsedFormula", "parse_formula"]

_TOKEN = re.compile(r"\s*(?:(?P<name>[A-Za-z_][A-Za-z0-9_.]*)|(?P<op>[/*()]))")


@dataclass(frozen=True)
class ParsedFormula:
    """Result of parsing a formula.

    Attributes
    ----------
    formula : str
        The formula as given.
    columns : tuple of str
        Key columns in order of first appearance.
    levels : tuple of tuple of str
        Every level as a tuple of columns in formula order, from the total (``()``) to the bottom.
    nestings : tuple of (tuple of str, str)
        ``(parent columns, child column)`` pairs: in the data each value of the child must sit
        under exactly one combination of the parent columns.
    """

    formula: str
    columns: tuple[str, ...]
    levels: tuple[tuple[str, ...], ...]
    nestings: tuple[tuple[tuple[str, ...], str], ...]


def _tokenize(formula: str) -> list[tuple[str, str, int]]:
    tokens: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(formula):
        if formula[pos:].strip() == "":
            break
        m = _TOKEN.match(formula, pos)
        if m is None:
            bad = pos + len(formula[pos:]) - len(formula[pos:].lstrip())
            raise FormulaError(
                f"unexpected character {formula[bad]!r} at position {bad} in {formula!r}: "
                "use '/' to nest, '*' to cross and parentheses to group, e.g. "
                "'(state / county) * floor'."
            )
        kind = "name" if m.group("name") else "op"
        start = m.start(kind)
        tokens.append((kind, m.group(kind), start))
        pos = m.end()
    return tokens


class _Parser:
    """Recursive-descent parser producing (levels, columns, leading names, nestings)."""

    def __init__(self, formula: str) -> None:
        self.formula = formula
        self.tokens = _tokenize(formula)
        self.i = 0
        self.nestings: list[tuple[tuple[str, ...], str]] = []

    def error(self, msg: str, pos: int | None = None) -> FormulaError:
        where = f" at position {pos}" if pos is not None else " at the end"
        return FormulaError(f"{msg}{where} in {self.formula!r}")

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def parse(self) -> tuple[set[frozenset[str]], list[str]]:
        if not self.tokens:
            raise FormulaError("empty formula: give key columns, e.g. '(state / county) * floor'.")
        levels, cols, _ = self.expr()
        tok = self.peek()
        if tok is not None:
            if tok[1] == ")":
                raise self.error("unbalanced parenthesis: ')' without a matching '('", tok[2])
            raise self.error(f"expected '/' or '*' but found {tok[1]!r}", tok[2])
        return levels, cols

    def expr(self) -> tuple[set[frozenset[str]], list[str], list[str]]:
        levels, cols, lead = self.term()
        while (tok := self.peek()) is not None and tok[1] == "*":
            self.i += 1
            right, rcols, _ = self.term()
            self._check_disjoint(cols, rcols, tok[2])
            levels = {a | b for a in levels for b in right}
            cols = cols + rcols
            lead = []  # a crossing has no single leading column to nest under a parent
        return levels, cols, lead

    def term(self) -> tuple[set[frozenset[str]], list[str], list[str]]:
        levels, cols, lead = self.atom()
        while (tok := self.peek()) is not None and tok[1] == "/":
            self.i += 1
            right, rcols, rlead = self.atom()
            self._check_disjoint(cols, rcols, tok[2])
            full = frozenset(cols)
            for child in rlead:
                self.nestings.append((tuple(cols), child))
            levels = levels | {full | b for b in right}
            cols = cols + rcols
        return levels, cols, lead

    def atom(self) -> tuple[set[frozenset[str]], list[str], list[str]]:
        tok = self.peek()
        if tok is None:
            raise self.error("expected a column name or '('")
        kind, value, pos = tok
        if kind == "name":
            self.i += 1
            return {frozenset(), frozenset([value])}, [value], [value]
        if value == "(":
            self.i += 1
            levels, cols, lead = self.expr()
            close = self.peek()
            if close is None or close[1] != ")":
                raise self.error(
                    f"unbalanced parenthesis: '(' at position {pos} is never closed",
                    None if close is None else close[2],
                )
            self.i += 1
            return levels, cols, lead
        raise self.error(f"expected a column name or '(' but found {value!r}", pos)

    def _check_disjoint(self, left: list[str], right: list[str], pos: int) -> None:
        both = sorted(set(left) & set(right))
        if both:
            raise self.error(f"column(s) {', '.join(both)} appear twice", pos)


def parse_formula(formula: str) -> ParsedFormula:
    """Parse a hierarchy formula.

    Parameters
    ----------
    formula : str
        E.g. ``"state / county"``, ``"(state / county) * floor"``, ``"gender * legal * state"``.

    Returns
    -------
    ParsedFormula

    Raises
    ------
    FormulaError
        With the position and reason of the first problem.
    """
    if not isinstance(formula, str):
        raise FormulaError(f"formula must be a string, got {type(formula).__name__}")
    parser = _Parser(formula)
    level_sets, cols = parser.parse()
    order = {c: i for i, c in enumerate(cols)}
    levels = sorted(
        (tuple(sorted(lv, key=order.__getitem__)) for lv in level_sets),
        key=lambda lv: (len(lv), [order[c] for c in lv]),
    )
    return ParsedFormula(
        formula=formula,
        columns=tuple(cols),
        levels=tuple(levels),
        nestings=tuple(parser.nestings),
    )
