"""How p-values are shown: the tests stop at a floor, so a value there is printed as a bound.

The tests compute p-values down to `P_FLOOR` and clamp there (`stats.ranks.z_from_null`,
`stats.neurons`, `vocab.compare`: below it a double's normal tail is no longer accurate). A
Bonferroni bound over k tests, one of them at the floor, is k × `P_FLOOR`. Every value below
`FLOOR_ZONE` is therefore a floor times a count, and every renderer prints it as "≤ 2e-300":
the true p-value is at most that, and usually far smaller.
"""

from __future__ import annotations

P_FLOOR = 1e-300  # where the tests clamp their p-values
FLOOR_ZONE = 1e-290  # below this a p-value is the floor times a Bonferroni count (k < 10**10)


def at_floor(p: float | None) -> bool:
    """Whether `p` sits at the tests' floor (or a Bonferroni multiple of it): an upper bound, not a figure.

    >>> at_floor(2e-300), at_floor(1e-12), at_floor(0.0), at_floor(None)
    (True, False, False, False)
    """
    return p is not None and 0 < p < FLOOR_ZONE


def floor_text(p: float) -> str:
    """A p-value at the floor as the bound it is.

    >>> floor_text(1e-300), floor_text(2e-300), floor_text(1.5e-299)
    ('≤ 1e-300', '≤ 2e-300', '≤ 1.5e-299')
    """
    return f"≤ {p:.2g}"


def p_phrase(p: float | None) -> str:
    """'p = 0.03', 'p ≤ 2e-300' or 'p = n/a', for prose.

    >>> p_phrase(0.0312), p_phrase(3.2e-12), p_phrase(2e-300), p_phrase(None)
    ('p = 0.031', 'p = 3.2e-12', 'p ≤ 2e-300', 'p = n/a')
    """
    if p is None:
        return "p = n/a"
    return f"p {floor_text(p)}" if at_floor(p) else f"p = {p:.2g}"
