"""asyncpg against psycopg 3 on the PostgreSQL writer's shape (issue 12: choose the driver
by measurement).

One transaction per batch of 16 admissions, as the store's group commit makes it: lock
the head row, insert 16 audit-like rows and 32 delivery-like rows (1.8 KB bodies),
update the head, COMMIT. Same server, same tables, alternating drivers.

asyncpg is not a dependency of thumpflow; run this in a separate virtualenv:

    python3 -m venv /tmp/apg && /tmp/apg/bin/pip install asyncpg psycopg[binary]
    /tmp/apg/bin/python bench/pg_driver_bench.py "postgresql://postgres:PW@127.0.0.1:55432/postgres"

It creates and drops its own tables (dh, da, dd) in that database.
"""

import asyncio
import hashlib
import sys
import time

import asyncpg
import psycopg

URL = sys.argv[1]
SETUP = """DROP TABLE IF EXISTS dh, da, dd;
CREATE TABLE dh (one bool PRIMARY KEY, n bigint NOT NULL); INSERT INTO dh VALUES (true, 0);
CREATE TABLE da (entry_id bigint PRIMARY KEY, at float8, actor text, action text,
  subject text, detail text, prev_hash text, hash text);
CREATE INDEX das ON da(subject, entry_id); CREATE INDEX dah ON da(hash);
CREATE TABLE dd (delivery_id bigint PRIMARY KEY, destination_id text, ordering_key text,
  status int, created_at float8, body bytea);
CREATE INDEX ddp ON dd(destination_id, delivery_id) WHERE status = 0;"""
TXNS = 400
n = 0


def batch():
    global n
    a, d = [], []
    for _ in range(16):
        n += 1
        h = hashlib.sha256(str(n).encode()).hexdigest()
        a.append(
            (n, time.time(), "mllp:127.0.0.1", "received", f"event:E{n:025d}", "adt accepted", h, h)
        )
        for j in range(2):
            d.append((2 * n + j, f"dest{j}", f"Patient/MRN{n % 200}", 0, time.time(), b"x" * 1800))
    return a, d


def run_psycopg():
    conn = psycopg.connect(URL, autocommit=True)
    conn.execute(SETUP)
    t = time.perf_counter()
    for _ in range(TXNS):
        a, d = batch()
        with conn.transaction():
            conn.execute("SELECT n FROM dh WHERE one FOR UPDATE").fetchone()
            with conn.cursor() as c:
                c.executemany("INSERT INTO da VALUES (%s,%s,%s,%s,%s,%s,%s,%s)", a)
                c.executemany("INSERT INTO dd VALUES (%s,%s,%s,%s,%s,%s)", d)
            conn.execute("UPDATE dh SET n = %s WHERE one", (n,))
    return time.perf_counter() - t


async def run_asyncpg():
    conn = await asyncpg.connect(URL)
    await conn.execute(SETUP)
    t = time.perf_counter()
    for _ in range(TXNS):
        a, d = batch()
        async with conn.transaction():
            await conn.fetchrow("SELECT n FROM dh WHERE one FOR UPDATE")
            await conn.executemany("INSERT INTO da VALUES ($1,$2,$3,$4,$5,$6,$7,$8)", a)
            await conn.executemany("INSERT INTO dd VALUES ($1,$2,$3,$4,$5,$6)", d)
            await conn.execute("UPDATE dh SET n = $1 WHERE one", n)
    el = time.perf_counter() - t
    await conn.close()
    return el


for r in range(3):
    p = run_psycopg()
    a = asyncio.run(run_asyncpg())
    print(
        f"round {r + 1}: psycopg {p / TXNS * 1e6:.0f} us/txn ({16 * TXNS / p:,.0f} admissions/s)"
        f"  asyncpg {a / TXNS * 1e6:.0f} us/txn ({16 * TXNS / a:,.0f} admissions/s)"
    )
