"""
The SQLite database of people and the SQL tool the model calls.

    python db.py create [--data_dir data]      # data/people.db from data/people.jsonl
    python db.py query "SELECT birth_place FROM people WHERE name = 'Ada Quinn'" [--data_dir data]

`run_sql(query, db_path)` is the tool. Model-written SQL is untrusted input, so the database is
opened read-only (URI mode=ro plus PRAGMA query_only), SQLite's authorizer allows nothing but a
SELECT reading the `people` table, and each query's time is bounded at every stage:
  - running: a progress handler every 100 virtual-machine instructions stops it at a 50 ms deadline;
  - one instruction (a function call, a sort step) stays short: strings are at most 1,000 bytes,
    LIKE/GLOB patterns 100, and functions whose single call can loop without bound are denied
    (printf/format: '%.*c' repeats a character `precision` times; printf('%.*c', 2147483647, 'x')
    took 9 s); a sort larger than the 1 MB page cache is done in sorted runs that SQLite spills to
    anonymous temporary files (unlinked as they are opened: no file is left or visible);
  - compiling, which the progress handler does not see: the SQL is at most 1,000 characters and
    SQLite's heap is limited to 8 MiB for this whole process (PRAGMA hard_heap_limit, which cannot
    be raised again), which stops a query whose CTEs or subqueries expand exponentially in ~30 ms.
The rows and characters returned are bounded. Every failure comes back as a short 'error: ...' text
for the model to read; run_sql never raises and never changes the database file.
"""
import argparse
import json
import os
import sqlite3
import sys
import threading
import time

DB_FILE = 'people.db'
TABLE = 'people'
MAX_ROWS = 10          # rows returned to the model
MAX_CHARS = 200        # characters returned to the model
TIMEOUT_S = 0.05       # wall time per query
PROGRESS_OPS = 100     # virtual-machine instructions between two deadline checks
MAX_LENGTH = 1000      # largest string or blob a query may build; the data's values are < 100 bytes
HEAP_LIMIT = 8 << 20   # bytes of SQLite memory, process-wide: bounds compiling; leaves db.create its 2 MB cache
CACHE_KB = 1000        # page cache per connection, and the size of the sorted runs a big sort spills
LIMITS = {
    sqlite3.SQLITE_LIMIT_LENGTH: MAX_LENGTH,  # a call's cost grows with its strings (instr, replace: the product)
    sqlite3.SQLITE_LIMIT_LIKE_PATTERN_LENGTH: 100,  # LIKE/GLOB: string length x pattern length
    sqlite3.SQLITE_LIMIT_SQL_LENGTH: 1000,  # model-written SQL is one short line
    sqlite3.SQLITE_LIMIT_EXPR_DEPTH: 100,  # these five: the size of what one statement compiles to
    sqlite3.SQLITE_LIMIT_COMPOUND_SELECT: 10,
    sqlite3.SQLITE_LIMIT_FUNCTION_ARG: 16,
    sqlite3.SQLITE_LIMIT_COLUMN: 100,
    sqlite3.SQLITE_LIMIT_VDBE_OP: 10_000,
    sqlite3.SQLITE_LIMIT_ATTACHED: 0,
}
DENIED_FUNCTIONS = {'load_extension', 'randomblob', 'zeroblob', 'readfile', 'writefile', 'edit', 'fts3_tokenizer',
                    'printf', 'format'}


def create(data_dir='data'):
    """people.jsonl -> people.db: one table, a TEXT column per attribute, unique indexed name.
    Built in one transaction into a temporary file, then renamed, so a reader never sees half a db."""
    from tqdm import tqdm
    src, dst = os.path.join(data_dir, 'people.jsonl'), os.path.join(data_dir, DB_FILE)
    if not os.path.exists(src):
        sys.exit(f"error: {src} not found; run `python data.py people` first")
    with open(os.path.join(data_dir, 'meta.json')) as f:
        attrs = json.load(f)['attributes']
    tmp = f'{dst}.{os.getpid()}.tmp'   # per process: two runs may build the same db at once
    if os.path.exists(tmp):
        os.remove(tmp)
    con = sqlite3.connect(tmp, isolation_level=None)
    con.execute('PRAGMA journal_mode = OFF')  # a fresh temporary file: nothing to roll back to
    con.execute('PRAGMA synchronous = OFF')
    cols = ', '.join(f'{a} TEXT' for a in attrs)
    con.execute(f'CREATE TABLE {TABLE} (id INTEGER PRIMARY KEY, name TEXT NOT NULL, split TEXT, {cols})')
    keys = ['id', 'name', 'split'] + attrs
    insert = f"INSERT INTO {TABLE} ({', '.join(keys)}) VALUES ({', '.join('?' * len(keys))})"
    con.execute('BEGIN')
    with open(src, encoding='utf-8') as f:
        rows = (tuple(p[k] for k in keys) for p in map(json.loads, f))
        con.executemany(insert, tqdm(rows, desc='people.db', unit='rows', mininterval=1, disable=None))
    con.execute(f'CREATE UNIQUE INDEX idx_name ON {TABLE} (name)')  # after the inserts: faster
    con.execute('COMMIT')
    n = con.execute(f'SELECT COUNT(*) FROM {TABLE}').fetchone()[0]
    con.close()
    os.replace(tmp, dst)
    print(f"{n} rows -> {dst}")
    return dst


# ----------------------------------------------------------------------------- the tool
def _authorize(action, arg1, arg2, db_name, trigger):
    if action == sqlite3.SQLITE_SELECT:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_READ:  # arg1 = table, arg2 = column
        return sqlite3.SQLITE_OK if arg1 == TABLE and db_name in ('main', None) else sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION:  # arg2 = function name
        return sqlite3.SQLITE_DENY if arg2.lower() in DENIED_FUNCTIONS else sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_RECURSIVE:  # a recursive CTE: allowed, the time bound stops it
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY  # INSERT, UPDATE, DELETE, CREATE, DROP, PRAGMA, ATTACH, ...


_local = threading.local()  # sqlite3 connections are per thread


def _connection(db_path):
    """This thread's connection to db_path. A thread keeps one, for the path it last used: every
    connection's cache counts against HEAP_LIMIT."""
    cached = getattr(_local, 'cached', None)
    if cached and cached[0] == db_path:
        return cached[1:]
    if cached:
        _local.cached = None
        cached[1].close()
    if not os.path.exists(db_path):
        raise FileNotFoundError(db_path)
    con = sqlite3.connect(f'file:{os.path.abspath(db_path)}?mode=ro', uri=True, isolation_level=None,
                          cached_statements=0)  # a cached statement would hold its memory
    for pragma in ('query_only = 1', f'cache_size = -{CACHE_KB}', f'hard_heap_limit = {HEAP_LIMIT}'):
        con.execute(f'PRAGMA {pragma}')  # before the authorizer, which denies every PRAGMA
    for limit, value in LIMITS.items():
        con.setlimit(limit, value)
    con.set_authorizer(_authorize)
    deadline = [0.0]
    # A non-zero return aborts the query; SQLite calls this only between instructions.
    con.set_progress_handler(lambda: time.perf_counter() > deadline[0], PROGRESS_OPS)
    _local.cached = db_path, con, deadline
    return con, deadline


def run_sql(query, db_path=os.path.join('data', DB_FILE), max_rows=MAX_ROWS, max_chars=MAX_CHARS, timeout=TIMEOUT_S):
    """Run one untrusted SELECT; return its rows as text ('a | b' per row, one row per line),
    or a short 'error: ...' text. Never raises, never writes."""
    try:
        con, deadline = _connection(db_path)
    except Exception as e:  # missing file, unreadable database
        return f"error: cannot open database ({type(e).__name__}: {e})"[:max_chars]
    deadline[0] = time.perf_counter() + timeout
    cur = None
    try:
        cur = con.execute(query)
        rows = cur.fetchmany(max_rows + 1)
    except sqlite3.OperationalError as e:
        msg = str(e)
        if msg == 'interrupted':
            msg = f'query exceeded the time limit of {timeout * 1000:.0f} ms'
        return f'error: {msg}'[:max_chars]
    except MemoryError:  # SQLITE_NOMEM: HEAP_LIMIT or SQLITE_LIMIT_VDBE_OP reached
        return 'error: the query needs too much memory'
    except (sqlite3.Error, ValueError, OverflowError) as e:
        return f'error: {e}'[:max_chars]
    except Exception as e:  # e.g. a NUL character in the query
        return f'error: {type(e).__name__}: {e}'[:max_chars]
    finally:
        if cur is not None:
            cur.close()  # finalize the statement so nothing stays open between calls
    if not rows:
        return 'error: no result'
    cell = lambda v: 'NULL' if v is None else str(v)[:max_chars]  # a row may hold 100 values of 1,000 bytes
    text = '\n'.join(' | '.join(map(cell, row)) for row in rows[:max_rows])
    if len(rows) > max_rows:
        text += f'\n... (more than {max_rows} rows)'
    return text if len(text) <= max_chars else text[:max_chars - 3] + '...'


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('command', choices=['create', 'query'])
    ap.add_argument('sql', nargs='?', help='the query, for `query`')
    ap.add_argument('--data_dir', default='data')
    args = ap.parse_args(argv)
    if os.path.exists(args.data_dir) and not os.path.isdir(args.data_dir):
        sys.exit(f"error: --data_dir {args.data_dir!r} is a file, not a directory")
    if not os.path.isdir(args.data_dir):
        sys.exit(f"error: --data_dir {args.data_dir!r} not found; run `python data.py people --data_dir {args.data_dir}` first")
    if args.command == 'create':
        if args.sql is not None:
            sys.exit('error: sql: `db.py create` takes no SQL string (did you mean `db.py query`?)')
        create(args.data_dir)
    else:
        if not args.sql or not args.sql.strip():
            sys.exit('error: sql: `db.py query` needs a non-empty SQL string')
        path = os.path.join(args.data_dir, DB_FILE)
        if not os.path.exists(path):
            sys.exit(f"error: {path} not found; run `python db.py create` first")
        print(run_sql(args.sql, path))


if __name__ == '__main__':
    main()
