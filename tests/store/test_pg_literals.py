"""The writer's inlined values are psycopg's, byte for byte (`store.postgresql._literals`).

`Literals` quotes each scalar with psycopg's own dumpers instead of going
through `ClientCursor.mogrify`; whatever the value (text with NUL, the
escape character, quotes, backslashes, comment and dollar-quote markers;
integers of any size; NaN, infinities and -0.0; bytes; booleans; None), the
statement must be exactly what `mogrify` writes on the same connection, and
the server must read every value back as it was. A list of scalars is an
array constructor the server reads to the same array as `mogrify`'s array
literal. Anything else (an empty or nested list, a literal `%`) is left to
`mogrify`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.postgres import PgCluster
from thumpflow.store.postgresql._db import connect, translate
from thumpflow.store.postgresql._literals import Literals, template

HOSTILE_TEXT = st.text(alphabet=st.sampled_from("\x00\uffff'\"\\$-;%?é€😀aZ0 \n"), max_size=16)
SCALARS = (
    HOSTILE_TEXT
    | st.text(max_size=24)
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.binary(max_size=24)
    | st.booleans()
    | st.none()
)


@pytest.fixture(scope="module")
def conn(pg_cluster: PgCluster) -> Iterator[psycopg.Connection[Any]]:
    connection = connect(pg_cluster.new_database(), None)
    yield connection
    connection.close()


def mogrified(conn: psycopg.Connection[Any], query: bytes, values: list[Any]) -> bytes:
    return psycopg.ClientCursor(conn).mogrify(query, values).encode("utf-8")


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(SCALARS, min_size=1, max_size=8))
def test_a_row_is_inlined_exactly_as_mogrify_writes_it(
    conn: psycopg.Connection[Any], values: list[Any]
) -> None:
    query = translate(f"INSERT INTO t VALUES ({', '.join('?' * len(values))})")
    parts = template(query)
    assert parts is not None
    assert Literals(conn).render(parts, values) == mogrified(conn, query, values)


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(SCALARS, min_size=1, max_size=6))
def test_the_server_reads_every_inlined_value_back_as_it_was(
    conn: psycopg.Connection[Any], values: list[Any]
) -> None:
    """Numbers without a cast are read as `numeric` by a bare SELECT (as by an INSERT
    into a column of the row's type, which converts them); text through the
    connection's loader, which restores NUL."""
    parts = template(translate(f"SELECT {', '.join('?' * len(values))}"))
    assert parts is not None
    statement = Literals(conn).render(parts, values)
    assert statement is not None
    row = conn.execute(statement).fetchone()
    assert row is not None
    for sent, got in zip(values, row, strict=True):
        if sent is None or isinstance(sent, bool):
            assert got is sent
        elif isinstance(sent, int):
            assert int(got) == sent
        elif isinstance(sent, float):
            assert math.isnan(got) if math.isnan(sent) else float(got) == sent
        elif isinstance(sent, bytes):
            assert bytes(got) == sent
        else:
            assert got == sent


ARRAYS = st.sampled_from(
    [
        ("text", HOSTILE_TEXT | st.text(max_size=12)),
        ("bigint", st.integers(min_value=-(2**63), max_value=2**63 - 1)),
        ("float8", st.floats(allow_nan=False)),
        ("bytea", st.binary(max_size=12)),
        ("boolean", st.booleans()),
    ]
)


def served(conn: psycopg.Connection[Any], statement: bytes) -> tuple[Any, ...]:
    row = conn.execute(statement).fetchone()
    assert row is not None
    return tuple(row)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), array=ARRAYS)
def test_a_list_reaches_the_server_as_the_same_array_as_through_mogrify(
    conn: psycopg.Connection[Any], data: st.DataObject, array: tuple[str, Any]
) -> None:
    """With a cast (`unnest(?::text[])`) and without (`= ANY(?)`), NULL elements too."""
    kind, elements = array
    values = [data.draw(elements), *data.draw(st.lists(elements | st.none(), max_size=5))]
    probe = data.draw(elements)
    query = translate(f"SELECT ?::{kind}[], ? = ANY(?), ?")
    parts = template(query)
    assert parts is not None
    row = [values, probe, values, 1]
    statement = Literals(conn).render(parts, row)
    assert statement is not None and b"ARRAY[" in statement
    assert served(conn, statement) == served(conn, mogrified(conn, query, row))


def test_what_it_cannot_quote_is_left_to_mogrify(conn: psycopg.Connection[Any]) -> None:
    literals = Literals(conn)
    parts = template(translate("SELECT ? = ANY(?)"))
    assert parts is not None
    assert literals.render(parts, ["a", []]) is None
    assert literals.render(parts, ["a", [None]]) is None
    assert literals.render(parts, ["a", [["a"], ["b"]]]) is None
    assert literals.render(parts, ["a", ("a", "b")]) is None
    assert literals.render(parts, ["only one"]) is None
    assert template(translate("SELECT '100%' || ?")) is None


def test_text_on_a_connection_not_in_utf8_is_left_to_mogrify(
    conn: psycopg.Connection[Any],
) -> None:
    conn.execute("SET client_encoding = 'LATIN1'")
    try:
        parts = template(translate("SELECT ?, ?"))
        assert parts is not None
        assert Literals(conn).render(parts, ["é", 1]) is None
        assert Literals(conn).render(parts, [b"\x00", 1]) == mogrified(
            conn, translate("SELECT ?, ?"), [b"\x00", 1]
        )
    finally:
        conn.execute("SET client_encoding = 'UTF8'")
