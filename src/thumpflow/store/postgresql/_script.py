"""The writer's statements, sent to PostgreSQL in as few round trips as the data allows.

Each round trip to the server is made while the writer holds the chain
head's row lock (every node's writes wait for it) and costs the writer
thread a wait: for the answer, for the GIL and a core, and, with the
database on another host, the network's latency; a group commit took
fifteen. So the writer's connection keeps a *pending script*: statements
whose results nobody reads (its own inserts, the audit entries, savepoints,
COMMIT) and reads whose rows can wait (`defer_read`) are rendered with their
values inlined (psycopg's own quoting: `_literals.Literals`, else
`psycopg.ClientCursor.mogrify`, NUL-safe as the connection) and sent
together, in order, ahead of the next statement whose result is read, or
when the caller flushes. A multi-row `INSERT ... VALUES` replaces one
insert per row, and one `UPDATE ... FROM (VALUES ...)` one update per row
by key (`UPDATE t SET c = ?, d = 1 WHERE k = ?`): the server parses,
analyses and plans each statement of a script (about 40 % of its CPU per
admitted message, when each Delivered record was an update of its own,
the most frequent statement; docs/benchmarks.md). The rows' values are
cast to their columns' types, read from the catalog when the connection is
made; a table made later, a key given twice, or an assignment that is not
a value or a number keeps one statement per row.

The statements the connection's owner names (`prepared`: the writer's fixed
ones, sent in every transaction) are prepared once a connection, with SQL
`PREPARE`, and appear in the script as `EXECUTE name(values)`, the values
inlined as above: the server parses and analyses each of them once a
connection instead of once a transaction, and plans it once too when its
generic plan is as good as a fresh one (PostgreSQL's plan cache; so name
only statements whose best plan cannot depend on a table's size;
docs/benchmarks.md, issue 12, seventeenth session). A new connection
(`rebind`) prepares them again; one that cannot be prepared when the
connection is made (its table is made later) is sent inlined, as are values
`Literals` does not quote. Should the server session lose them (`DEALLOCATE`,
a pooler resetting or swapping sessions), the script that met it fails as
any failure does, and every statement is sent inlined from then on, on that
connection.

Guarantees:
- Order is kept: pending statements run before any later statement, in the
  order they were added, in the same transaction.
- A failure is reported where it happens: a statement of the script that
  fails raises from the call that sent the script (`flush` or `execute`),
  and the server skips the rest of that script; the
  transaction is then aborted until the caller rolls back (to a savepoint
  or entirely), exactly as when each statement was sent alone.
- Values are never concatenated into SQL by hand: every one goes through
  psycopg's literal quoting for its type.
- A read may wait in the script too (`defer_read`): it runs in its place,
  and its rows reach its reader when the script is sent, before the call
  that sent it returns; a read dropped with a rolled-back savepoint
  (`drop_from`) or a cleared script never reaches its reader.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import psycopg

from thumpflow.store.postgresql._db import PgDb, translate
from thumpflow.store.postgresql._literals import Literals, template

_log = logging.getLogger("thumpflow.store.postgresql")
_VALUES = b" VALUES ("
# Above this many rows a statement that is not a plain INSERT costs the server more
# parsed one by one from the script than prepared once (measured: bench/store_bench.py).
DEFER_ROWS = 32
_UPDATE_BY_KEY = re.compile(rb"UPDATE (\w+) SET (.+) WHERE (\w+) = %s", re.DOTALL)
_ASSIGNMENT = re.compile(rb"(\w+) = (%s|-?\d+)")
_COLUMN_TYPES = (
    "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod)"
    " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
    " WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'"
    " AND a.attnum > 0 AND NOT a.attisdropped"
)


class ScriptDb(PgDb):
    """`PgDb` with a pending script (see the module docstring)."""

    __slots__ = ("_inline", "_literals", "_prepared", "_reads", "_statements", "_types", "pending")

    def __init__(self, conn: psycopg.Connection[Any], prepared: Sequence[str] = ()) -> None:
        """`prepared`: statements (`?` placeholders) to prepare on every connection."""
        super().__init__(conn)
        conn.prepare_threshold = None
        self._inline = psycopg.ClientCursor(conn)
        self._literals = Literals(conn)
        self._types = _column_types(conn)
        self._statements = [translate(sql) for sql in prepared]
        self._prepared = _prepare(conn, self._statements)
        self.pending: list[bytes] = []
        # The deferred reads: their statement's place in `pending`, and their reader.
        self._reads: list[tuple[int, Callable[[list[Any]], None]]] = []

    def rebind(self, conn: psycopg.Connection[Any]) -> None:
        """Use a new connection (the old one broke); anything pending is dropped."""
        self.conn = conn
        conn.prepare_threshold = None
        self._inline = psycopg.ClientCursor(conn)
        self._literals = Literals(conn)
        self._types = _column_types(conn)
        self._prepared = _prepare(conn, self._statements)
        self.clear()

    def clear(self) -> None:
        """Drop the pending script and its reads; none of it reached the server."""
        self.pending.clear()
        self._reads.clear()

    def render(self, sql: str, parameters: Sequence[Any] = ()) -> bytes:
        """One statement with its values inlined as literals (as `EXECUTE name(values)`
        when it is prepared)."""
        return self._statement(translate(sql), parameters)

    def _statement(self, query: bytes, parameters: Sequence[Any]) -> bytes:
        """A whole statement: `EXECUTE` when it is prepared and its values quotable."""
        prepared = self._prepared.get(query)
        if prepared is not None:
            name, arguments = prepared
            values = self._literals.render(arguments, parameters) if arguments else b""
            if values is not None:
                return name + values
        return self._render(query, parameters)

    def _render(self, query: bytes, parameters: Sequence[Any]) -> bytes:
        parts = template(query)
        rendered = None if parts is None else self._literals.render(parts, parameters)
        if rendered is None:
            return self._inline.mogrify(query, parameters).encode("utf-8")
        return rendered

    def defer(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Add `sql` once per row to the script: one multi-row statement for a plain
        `INSERT ... VALUES (...)` or an update by key, one statement per row
        otherwise."""
        rows = list(rows)
        if not rows:
            return
        query = translate(sql)
        head, found, values = query.partition(_VALUES)
        if found and b"ON CONFLICT" not in values and values.endswith(b")"):
            tuple_sql = b"(" + values
            self.pending.append(
                head + b" VALUES " + b", ".join([self._render(tuple_sql, row) for row in rows])
            )
            return
        if len(rows) > 1 and (update := self._update_by_key(query, rows)) is not None:
            self.pending.append(update)
            return
        self.pending.extend([self._statement(query, row) for row in rows])

    def _update_by_key(self, query: bytes, rows: list[Sequence[Any]]) -> bytes | None:
        """`UPDATE t SET ... FROM (VALUES ...) WHERE t.k = v.k` for every row of an
        update by key; None when `query` is not one, its table or a column is not
        known, or a key repeats (one joined row would update it, not each in turn)."""
        match = _UPDATE_BY_KEY.fullmatch(query)
        if match is None:
            return None
        table, assignments, key = match.groups()
        types = self._types.get(table)
        if types is None or len({row[-1] for row in rows}) != len(rows):
            return None
        bound: list[bytes] = []
        sets: list[bytes] = []
        for assignment in assignments.split(b", "):
            parts = _ASSIGNMENT.fullmatch(assignment)
            if parts is None:
                return None
            column, value = parts.groups()
            if value == b"%s":
                bound.append(column)
                value = b"_rows." + column
            sets.append(column + b" = " + value)
        columns = [*bound, key]
        if any(column not in types for column in columns):
            return None
        # CAST, not `::`, which binds tighter than a minus sign (`-9223372036854775808::bigint`
        # casts the number without its sign, out of range).
        first = b"(" + b", ".join([b"CAST(%s AS " + types[column] + b")" for column in columns])
        first += b")"
        others = b"(" + b", ".join([b"%s"] * len(columns)) + b")"
        values = [self._render(first, rows[0]), *[self._render(others, row) for row in rows[1:]]]
        return b"".join(
            [
                b"UPDATE " + table + b" SET " + b", ".join(sets),
                b" FROM (VALUES " + b", ".join(values) + b")",
                b" AS _rows(" + b", ".join(columns) + b")",
                b" WHERE " + table + b"." + key + b" = _rows." + key,
            ]
        )

    def defer_statement(self, text: str) -> None:
        """Add one statement without parameters (a savepoint) to the script."""
        self.pending.append(text.encode("ascii"))

    def defer_read(
        self, sql: str, parameters: Sequence[Any], reader: Callable[[list[Any]], None]
    ) -> None:
        """Add one statement whose rows go to `reader` when the script is sent (one
        round trip fewer than reading it at once)."""
        self._reads.append((len(self.pending), reader))
        self.pending.append(self.render(sql, parameters))

    def drop_from(self, statement: str) -> bool:
        """Drop the last pending `statement` and everything after it; False when it is
        not pending (it was sent, and what is pending came after it: all dropped)."""
        marker = statement.encode("ascii")
        pending = self.pending
        found = marker in pending
        del pending[len(pending) - 1 - pending[::-1].index(marker) if found else 0 :]
        self._reads[:] = [read for read in self._reads if read[0] < len(pending)]
        return found

    def flush(self) -> None:
        """Send the pending script, if any (one round trip)."""
        if self.pending:
            self._send()

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> psycopg.Cursor[Any]:
        """Run `sql` after the pending script, in the same round trip; its cursor."""
        if not self.pending:
            return super().execute(sql, parameters)
        self.pending.append(self.render(sql, parameters))
        cursor = self._send()
        while cursor.nextset():
            pass
        return cursor

    def _send(self) -> psycopg.Cursor[Any]:
        """Run the script; the cursor is left at the result of its last deferred read
        (or its first statement), the results after it still to be stepped through."""
        script = b"; ".join(self.pending)
        reads = self._reads[:]
        self.clear()
        try:
            cursor = self.conn.execute(script)
        except psycopg.errors.InvalidSqlStatementName:
            if self._prepared:
                _log.warning(
                    "the server session lost the writer's prepared statements (reset by a"
                    " pooler?); they are sent inlined from now on"
                )
                self._prepared = {}
            raise
        at = 0
        for place, reader in reads:
            for _ in range(place - at):
                cursor.nextset()
            at = place
            reader(cursor.fetchall())
        return cursor

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> None:
        """A few rows join the script (`defer`); many go as one prepared statement with
        bound values, pipelined by psycopg, after the script: the server parses it once.
        Nothing is read back either way (the shared operations never read it).
        Only these are prepared: everything else the writer sends is a one-off
        script, whose prepare bookkeeping (a lookup keyed by the whole script) is
        switched off (`prepare_threshold = None`)."""
        rows = list(parameters)
        if len(rows) <= DEFER_ROWS:
            self.defer(sql, rows)
            return
        self.flush()
        self.conn.prepare_threshold = 0
        try:
            super().executemany(sql, rows)
        finally:
            self.conn.prepare_threshold = None


def _prepare(
    conn: psycopg.Connection[Any], statements: list[bytes]
) -> dict[bytes, tuple[bytes, tuple[bytes, ...]]]:
    """statement -> (`EXECUTE name`, the template of its values), for each of `statements`
    the server prepared on `conn`; one it refused is left out (and logged)."""
    prepared: dict[bytes, tuple[bytes, tuple[bytes, ...]]] = {}
    for number, query in enumerate(statements):
        parts = template(query)
        if parts is None:
            continue
        name = b"thumpflow_%d" % number
        numbered = parts[0] + b"".join([b"$%d" % n + part for n, part in enumerate(parts[1:], 1)])
        try:
            conn.execute(b"PREPARE " + name + b" AS " + numbered)
        except psycopg.Error as error:
            _log.warning("statement %d stays unprepared: %s", number, error.sqlstate)
            continue
        count = len(parts) - 1
        values = (b"(", *[b", "] * (count - 1), b")") if count else ()
        prepared[query] = (b"EXECUTE " + name, values)
    return prepared


def _column_types(conn: psycopg.Connection[Any]) -> dict[bytes, dict[bytes, bytes]]:
    """table -> column -> its type as SQL names it, for the tables of the current schema."""
    types: dict[bytes, dict[bytes, bytes]] = {}
    for table, column, sql_type in conn.execute(_COLUMN_TYPES).fetchall():
        types.setdefault(table.encode(), {})[column.encode()] = sql_type.encode()
    return types
