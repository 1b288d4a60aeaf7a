"""
All tests: python -m pytest test_all.py   (about a minute or two on 2 CPU cores)

Sections: data + tokenizer, the SQL tool, the Transformer, config, training runs (resume, SIGTERM,
DDP), the sweep, Mamba in model.py, the selective scan (torch and Triton backends against a float64
sequential reference; Triton runs in its CPU interpreter).
"""
import os

os.environ['TRITON_INTERPRET'] = '1'  # the Triton kernels run on CPU tensors; must precede importing ssm_triton

import csv
import hashlib
import json
import sqlite3
import time

import pytest
from hypothesis import given, settings, strategies as st

import data
import db


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope='session')
def data_dir(tmp_path_factory):
    """A small complete data set (people, bios, QA, tool QA, database)."""
    d = str(tmp_path_factory.mktemp('data'))
    data.prepare(d, num=200, unseen=20, seed=0)
    return d


def file_hash(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


# ----------------------------------------------------------------------------- the layers of the house
import ast
import glob

# Top-level files, lowest layer first: a file may import only files of a lower layer (nothing of its own
# layer or above), anywhere in it, inside functions included.
LAYERS = [['db'], ['data'], ['ssm_triton', 'packing'], ['model'], ['calm'], ['sample'], ['train'],
          ['sweep', 'calm_experiment', 'bench']]


def project_imports(path, modules):
    """The project modules a file imports, wherever the import statement is."""
    found = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            found |= {a.name.split('.')[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split('.')[0])
    return found & modules


def test_imports_only_point_down_and_form_no_circle():
    here = os.path.dirname(os.path.abspath(__file__))
    files = {os.path.basename(p)[:-3]: p for p in glob.glob(os.path.join(here, '*.py')) if not p.endswith('test_all.py')}
    layer = {m: i for i, ms in enumerate(LAYERS) for m in ms}
    assert set(files) == set(layer), f"files not in LAYERS (or gone): {set(files) ^ set(layer)}"
    graph = {m: project_imports(p, set(files)) for m, p in files.items()}
    for m, deps in graph.items():
        for dep in deps:
            assert layer[dep] < layer[m], f"{m}.py imports {dep}.py, which is not below it"
    # and no circle, by depth-first search (redundant with the layers, but says where the circle is)
    state = {}

    def visit(m, path):
        assert state.get(m) != 'open', f"import circle: {' -> '.join(path + [m])}"
        if state.get(m) is None:
            state[m] = 'open'
            for dep in graph[m]:
                visit(dep, path + [m])
            state[m] = 'done'
    for m in graph:
        visit(m, [])


def test_the_layer_test_sees_imports_inside_functions(tmp_path):
    f = tmp_path / 'x.py'
    f.write_text("import os\ndef f():\n    import train\n    from sample import answer\n")
    assert project_imports(str(f), {'train', 'sample', 'data'}) == {'train', 'sample'}


# ----------------------------------------------------------------------------- data
def test_generation_is_deterministic_in_the_seed(data_dir, tmp_path):
    again, other = str(tmp_path / 'again'), str(tmp_path / 'other')
    data.prepare(again, num=200, unseen=20, seed=0)
    data.prepare(other, num=200, unseen=20, seed=1)
    for name in data.FILES.values():
        assert file_hash(os.path.join(data_dir, name)) == file_hash(os.path.join(again, name)), name
    a = data.read_jsonl(os.path.join(data_dir, 'people.jsonl'))
    b = data.read_jsonl(os.path.join(other, 'people.jsonl'))
    assert [p['name'] for p in a] != [p['name'] for p in b]


def test_people_unique_names_splits_and_pools(data_dir):
    people = data.read_jsonl(os.path.join(data_dir, 'people.jsonl'))
    meta = data.load_meta(data_dir)
    assert len({p['name'] for p in people}) == len(people) == 220
    assert meta['splits'] == {'train': 160, 'held_out': 40, 'unseen': 20}
    assert [p['split'] for p in people].count('held_out') == 40
    # unseen people have first names that no other split uses
    first = lambda s: {p['name'].split(' ')[0] for p in people if p['split'] == s}
    assert not first('unseen') & (first('train') | first('held_out'))
    for a in meta['attributes']:
        assert meta['bits_per_fact'][a] > 0 and meta['pool_sizes'][a] >= len({p[a] for p in people})


def test_generation_chunking_does_not_change_output(tmp_path, monkeypatch):
    """Files are written in chunks of people; the chunk size must not change a byte."""
    a, b = str(tmp_path / 'a'), str(tmp_path / 'b')
    data.prepare(a, num=50, unseen=5, bios_per_person=2, qa_per_fact=2, extra='employer,university')
    monkeypatch.setattr(data, 'CHUNK', 7)
    data.prepare(b, num=50, unseen=5, bios_per_person=2, qa_per_fact=2, extra='employer,university')
    for name in data.FILES.values():
        assert file_hash(os.path.join(a, name)) == file_hash(os.path.join(b, name)), name
    assert len(data.read_jsonl(os.path.join(a, 'biographies.jsonl'))) == 110
    assert len(data.read_jsonl(os.path.join(a, 'qa.jsonl'))) == 55 * 6 * 2


def test_prepare_refuses_data_made_with_other_options(data_dir):
    with pytest.raises(SystemExit, match='other options.*num=200'):
        data.prepare(data_dir, num=300, unseen=20)


def test_prepare_twice_at_once_in_one_folder(tmp_path, data_dir):
    """Runs of a sweep (or two probes) may start together on data not yet made: all must finish, with whole files."""
    d = str(tmp_path / 'd')
    code = f"import data; data.prepare({d!r}, num=200, unseen=20, seed=0)"
    procs = [subprocess.Popen([sys.executable, '-c', code], cwd=os.path.dirname(os.path.abspath(__file__)),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    errors = [p.communicate()[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-300:] for e in errors]
    for name in list(data.FILES.values()) + ['meta.json']:
        assert file_hash(os.path.join(d, name)) == file_hash(os.path.join(data_dir, name)), name
    assert not [f for f in os.listdir(d) if 'tmp' in f]   # no temporary file left behind
    assert sqlite3.connect(os.path.join(d, db.DB_FILE)).execute(f'SELECT COUNT(*) FROM {db.TABLE}').fetchone()[0] == 220


def test_prepare_refuses_data_of_another_generator_version(tmp_path):
    d = str(tmp_path / 'd')
    data.prepare(d, num=20, unseen=2)
    meta = data.load_meta(d)
    meta.pop('version')                                  # as written before versions existed
    with open(os.path.join(d, 'meta.json'), 'w') as f:
        json.dump(meta, f)
    with pytest.raises(SystemExit, match='version 1, this is version'):
        data.prepare(d, num=20, unseen=2)


def test_unseen_first_names_have_the_name_shapes_of_the_rest():
    """Each first-name shape (words, hyphen) gives the unseen pool its share (rounded), so that the unseen
    group tests new names, not a shape training lacks."""
    opts = dict(data.DEFAULTS)
    pools = data.build_pools(opts)
    shape = lambda n: (len(n.split()), '-' in n)
    unseen, seen = pools['unseen_first_name'], pools['first_name']
    assert not set(unseen) & set(seen)
    for s in {shape(n) for n in unseen + seen}:
        k, n = sum(shape(x) == s for x in unseen), sum(shape(x) == s for x in unseen + seen)
        assert k == int(round(opts['unseen_first_frac'] * n)), (s, k, n)
    assert {shape(n) for n in unseen} >= {(1, False), (1, True), (2, False)}   # the default pool has all three


def test_every_template_renders():
    for table in (data.BIO_TEMPLATES, data.QUESTION_TEMPLATES):
        for a, temps in table.items():
            assert len(temps) >= (5 if table is data.BIO_TEMPLATES else 4)
            for t in temps:
                s = t.format(name='Ada Quinn', value='VALUE')
                assert 'Ada Quinn' in s and '{' not in s and '}' not in s
    for a, t in data.ANSWER_TEMPLATES.items():
        assert t.format(name='Ada Quinn', value='VALUE').endswith('VALUE')


def test_documents_hold_the_people_facts(data_dir):
    people = {p['id']: p for p in data.read_jsonl(os.path.join(data_dir, 'people.jsonl'))}
    for bio in data.read_jsonl(os.path.join(data_dir, 'biographies.jsonl')):
        text, p = bio['messages'][0]['content'], people[bio['id']]
        assert all(p[a] in text for a in data.QA_ATTRIBUTES) and bio['split'] == p['split']
    for qa in data.read_jsonl(os.path.join(data_dir, 'qa_tool.jsonl')):
        p = people[qa['id']]
        user, sql, result, answer = qa['messages']
        assert [m['role'] for m in qa['messages']] == ['user', 'sql', 'result', 'assistant']
        assert qa['answer'] == p[qa['attribute']] == result['content']
        assert answer['content'].endswith(qa['answer']) and p['name'] in user['content']
        assert db.run_sql(sql['content'], os.path.join(data_dir, db.DB_FILE)) == qa['answer']


def test_dialogs_reassemble_into_the_exact_training_text():
    msgs = [{'role': 'user', 'content': 'Where was Zoë Ñúñez born?'},
            {'role': 'sql', 'content': "SELECT birth_place FROM people WHERE name = 'Zoë Ñúñez'"},
            {'role': 'result', 'content': 'Lake Amy'},
            {'role': 'assistant', 'content': 'Zoë Ñúñez was born in Lake Amy'}]
    ids, mask = data.render(msgs)
    assert data.decode(ids) == ("<|user|>Where was Zoë Ñúñez born?<|assistant|>"
                                "<|sql|>SELECT birth_place FROM people WHERE name = 'Zoë Ñúñez'<|/sql|>"
                                "<|result|>Lake Amy<|/result|>Zoë Ñúñez was born in Lake Amy<|eot|>")
    # the loss mask covers exactly what the model writes: the SQL and the answer
    written = data.decode([t for t, m in zip(ids, mask) if m])
    assert written == ("<|sql|>SELECT birth_place FROM people WHERE name = 'Zoë Ñúñez'<|/sql|>"
                       "Zoë Ñúñez was born in Lake Amy<|eot|>")
    assert ids[:len(data.prompt_ids(msgs[0]['content']))] == data.prompt_ids(msgs[0]['content'])
    with pytest.raises(ValueError, match='unknown role'):
        data.render([{'role': 'system', 'content': 'x'}])


@given(st.text())
@settings(max_examples=300, deadline=None)
def test_tokenizer_round_trip(s):
    ids = data.encode(s)
    assert all(0 <= i < 256 for i in ids)
    assert data.decode(ids) == s


def test_sql_quoting_of_names_with_apostrophes(tmp_path):
    assert data.sql_for('occupation', "Tom O'Brien") == "SELECT occupation FROM people WHERE name = 'Tom O''Brien'"


# ----------------------------------------------------------------------------- the SQL tool
HOSTILE = [
    "INSERT INTO people (name) VALUES ('x')",
    "UPDATE people SET occupation = 'x'",
    "DELETE FROM people",
    "DROP TABLE people",
    "CREATE TABLE t (x)",
    "CREATE INDEX i ON people (occupation)",
    "ALTER TABLE people ADD COLUMN x",
    "ATTACH DATABASE '/tmp/evil.db' AS evil",
    "DETACH DATABASE main",
    "PRAGMA writable_schema = 1",
    "PRAGMA table_info(people)",
    "PRAGMA query_only = 0",
    "SELECT load_extension('/tmp/evil.so')",
    "VACUUM",
    "VACUUM INTO '/tmp/copy.db'",
    "REINDEX",
    "ANALYZE",
    "BEGIN; DELETE FROM people; COMMIT",
    "SELECT 1; DROP TABLE people",
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c",
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c, people",
    "SELECT count(*) FROM people a, people b, people c, people d",
    "SELECT randomblob(1000000000)",
    "SELECT zeroblob(1000000000)",
    "SELECT length(replace(hex(zeroblob(100000)), '0', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'))",
    "SELECT group_concat(a.name || b.name) FROM people a, people b",
    "SELECT * FROM sqlite_master",
    "SELECT * FROM sqlite_schema",
    "SELECT * FROM nonexistent",
    "SELECT nope FROM people",
    "SELEC name FROM people",
    "SELECT name FROM people WHERE name = 'unterminated",
    "",
    "   ",
    "-- just a comment",
    "SELECT name FROM people WHERE name = 'nobody at all'",
    "SELECT \x00 FROM people",
    "CREATE TEMP TABLE t AS SELECT * FROM people",
    "INSERT INTO temp.t VALUES (1)",
    "SAVEPOINT a",
    "SELECT * FROM pragma_table_info('people')",
    "SELECT * FROM generate_series(1, 1000000000)",
]


def test_run_sql_answers_a_lookup(data_dir):
    p = data.read_jsonl(os.path.join(data_dir, 'people.jsonl'))[5]
    path = os.path.join(data_dir, db.DB_FILE)
    assert db.run_sql(data.sql_for('birth_place', p['name']), path) == p['birth_place']
    assert db.run_sql(f"SELECT occupation, current_address FROM people WHERE id = {p['id']}", path) == \
        f"{p['occupation']} | {p['current_address']}"
    many = db.run_sql('SELECT name FROM people', path)
    assert many.count('\n') == db.MAX_ROWS and len(many) <= db.MAX_CHARS
    assert db.run_sql('SELECT 1', os.path.join(data_dir, 'missing.db')).startswith('error: cannot open')


def test_run_sql_rejects_hostile_queries_quickly_and_never_writes(data_dir):
    path = os.path.join(data_dir, db.DB_FILE)
    before = file_hash(path)
    assert len(HOSTILE) >= 30
    for q in HOSTILE:
        t0 = time.perf_counter()
        out = db.run_sql(q, path)
        dt = time.perf_counter() - t0
        assert isinstance(out, str) and out.startswith('error:'), (q, out)
        assert len(out) <= db.MAX_CHARS
        assert dt < 0.1, f"{q!r} took {dt * 1000:.0f} ms"
    assert file_hash(path) == before
    assert not os.path.exists('/tmp/copy.db')
    people = data.read_jsonl(os.path.join(data_dir, 'people.jsonl'))
    assert db.run_sql('SELECT count(*) FROM people', path) == str(len(people))


@given(st.text(max_size=200))
@settings(max_examples=300, deadline=None)
def test_run_sql_never_raises_on_random_strings(data_dir, q):
    path = os.path.join(data_dir, db.DB_FILE)
    t0 = time.perf_counter()
    out = db.run_sql(q, path)
    assert isinstance(out, str) and len(out) <= db.MAX_CHARS
    assert time.perf_counter() - t0 < 0.5


@given(st.lists(st.sampled_from(['SELECT', 'name', 'FROM', 'people', 'WHERE', '=', "'x'", ',', '*', '(', ')',
                                 'UNION', 'JOIN', 'DELETE', 'INSERT', 'ATTACH', 'PRAGMA', ';', 'randomblob', '1e9',
                                 'WITH', 'RECURSIVE', 'c', 'AS', 'count', 'sqlite_master']), max_size=14))
@settings(max_examples=300, deadline=None)
def test_run_sql_never_raises_on_random_sql_like_token_soup(data_dir, words):
    path = os.path.join(data_dir, db.DB_FILE)
    before = os.path.getmtime(path)
    out = db.run_sql(' '.join(words), path)
    assert isinstance(out, str) and len(out) <= db.MAX_CHARS
    assert os.path.getmtime(path) == before


import random


def sql_repeat(c, n):
    """SQL for a string of n copies of the character c, built with nested replace() (printf is denied)."""
    s, size = f"'{c * 10}'", 10
    while size < n:
        s, size = f"replace({s}, '{c}', '{c * 10}')", size * 10
    return f"substr({s}, 1, {n})"


A, A5000, B = sql_repeat('a', 950), sql_repeat('a', 5000), sql_repeat('b', 95)  # 950 + a name: < MAX_LENGTH
CTE_EXPANSION = "WITH a0(x) AS (SELECT 1)" + ''.join(
    f", a{i}(x) AS (SELECT (SELECT x FROM a{i - 1}) + (SELECT x FROM a{i - 1}))" for i in range(1, 16)) + " SELECT x FROM a15"
FLATTENING = "SELECT 1 x"
for _ in range(8):
    FLATTENING = f"SELECT x+x+x+x+x x FROM ({FLATTENING})"
# Queries whose time goes into single SQLite steps, which the deadline check between steps cannot stop: one
# function call, compiling, one sort; most are as big as the limits allow (LIKE patterns: 100 characters).
# Before db.py bounded that work, printf_repeat_char and format_width_precision took 9-20 s,
# like_long_pattern_per_row 1.4-3.7 s, cte_expansion 0.35-0.47 s, subquery_flattening 0.12-0.3 s and
# glob_class_long 0.1 s (2 busy cores).
SLOW_IN_ONE_STEP = {
    'printf_repeat_char': "SELECT printf('%.*c', 2147483647, 'x')",
    'format_width_precision': "SELECT format('%*.*c', 2147483647, 2147483647, 'x')",
    'printf_float_precision': "SELECT printf('%!.9999999g', 1.5) || printf('%.*f', 2147483647, 1e308)",
    'glob_class_long': f"SELECT glob('*[' || {A5000} || ']b', {A5000})",
    'glob_class_per_row': f"SELECT count(*) FROM people a, people b WHERE glob('*[' || {B} || ']b', {A} || a.name)",
    'like_long_pattern_per_row': f"SELECT count(*) FROM people a, people b WHERE ({A5000} || a.name) LIKE '%' || {A5000}",
    'like_pattern_per_row':
        f"SELECT count(*) FROM people a, people b WHERE ({A} || a.name) LIKE '%' || substr({A}, 1, 75) || b.name",
    'like_wildcards_per_row': f"SELECT count(*) FROM people a, people b WHERE ({A} || a.name) LIKE "
                              f"replace(substr({B}, 1, 37), 'b', '%a') || b.name",
    'like_escape': f"SELECT count(*) FROM people a, people b WHERE {A} || a.name LIKE "
                   f"replace(substr({B}, 1, 45), 'b', 'a%') || 'x' ESCAPE 'x'",
    'instr_per_row': f"SELECT count(*) FROM people a, people b WHERE instr({A} || a.name, substr({A}, 1, 475) || b.name)",
    'replace_per_row': f"SELECT count(*) FROM people a, people b WHERE replace({A} || a.name, substr({A}, 400) || 'b', b.name)",
    'replace_nested':
        f"SELECT length(replace(replace(replace(replace(substr({A}, 1, 60), 'a', 'aa'), 'a', 'aa'), 'a', 'aa'), 'a', 'aa'))",
    'trim_per_row': f"SELECT count(*) FROM people a, people b WHERE trim({A} || a.name, substr({B}, 1, 80) || 'a')",
    'case_and_code_per_row': f"SELECT count(*) FROM people a, people b WHERE upper({A} || a.name) IS NULL OR "
                             f"lower({A} || b.name) IS NULL OR soundex({A} || a.name) OR unicode({A}) OR quote({A} || b.name)",
    'json_deep': f"SELECT json_valid(replace({A}, 'a', '[')), json_extract('[1]', '$' || replace({B}, 'b', '[0]'))",
    'group_concat_join': "SELECT length(group_concat(a.name || b.name)) FROM people a, people b",
    'recursive_string': "WITH RECURSIVE c(n, s) AS (SELECT 0, 'a' UNION ALL SELECT n + 1, substr(s || n, -990) FROM c) "
                        "SELECT max(length(s)) FROM c",
    'cte_expansion': CTE_EXPANSION,
    'subquery_flattening': FLATTENING,
    'big_sort': "SELECT a.name FROM people a, people b, (SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3) ORDER BY random()",
}


def timed_answer(q, path):
    """run_sql's answer and its time; a slow answer is timed once more, as another process may have had the CPU
    (with a space appended: the query compiles again, were prepared statements cached)."""
    for retry in range(2):
        t0 = time.perf_counter()
        out = db.run_sql(q + ' ' * retry, path)
        dt = time.perf_counter() - t0
        if dt < 0.1:
            break
    return out, dt


@pytest.mark.parametrize('q', list(SLOW_IN_ONE_STEP.values()), ids=list(SLOW_IN_ONE_STEP))
def test_run_sql_bounds_the_work_of_one_step(data_dir, q):
    path = os.path.join(data_dir, db.DB_FILE)
    before, files = file_hash(path), sorted(os.listdir(data_dir))
    db.run_sql('SELECT 1', path)  # opening the connection is not the query's time
    out, dt = timed_answer(q, path)
    assert isinstance(out, str) and len(out) <= db.MAX_CHARS
    assert dt < 0.1, f"{dt * 1000:.0f} ms, {out!r}"
    assert file_hash(path) == before and sorted(os.listdir(data_dir)) == files


FUZZ_NUMBERS = ['0', '1', '-1', '3', '100', '999', '99999999', '2147483647', '-2147483648', '9223372036854775807',
                '1e308', '0.5', 'NULL']
FUZZ_BIG = ['999', '100000', '99999999', '2147483647', '-2147483648']
FUZZ_STRINGS = ["''", "'a'", "'%'", "'_'", "'%a%'", "'*'", "'[a-z]*'", "'Ada'", "'[1,[2,{\"a\":3}]]'", "'$.a'"]
FUZZ_FORMATS = ['%.*c', '%*.*s', '%.*f', '%*s', '%!.*g', '%0*d', '%.*q', '%,d', '%!.9999999g', '%.*z%.*c']
FUZZ_FUNCTIONS = {  # name: the argument counts to try
    'printf': (2, 3), 'format': (2, 3), 'substr': (2, 3), 'replace': (3,), 'instr': (2,), 'like': (2, 3),
    'glob': (2,), 'trim': (1, 2), 'ltrim': (2,), 'upper': (1,), 'lower': (1,), 'hex': (1,), 'quote': (1,),
    'unicode': (1,), 'soundex': (1,), 'length': (1,), 'char': (1, 3), 'round': (2,), 'abs': (1,),
    'coalesce': (2, 3), 'iif': (3,), 'nullif': (2,), 'json_array': (1, 3), 'json_extract': (2,),
    'json_quote': (1,), 'json_valid': (1,), 'strftime': (2,), 'zeroblob': (1,), 'randomblob': (1,), 'typeof': (1,),
}
FUZZ_AGGREGATES = ['count', 'group_concat', 'max', 'min', 'sum', 'total', 'json_group_array']
FUZZ_COLUMNS = ['name', 'birth_place', 'occupation', 'current_address', 'birth_date', 'id']
FUZZ_OPS = ['||', '+', '*', 'LIKE', 'GLOB', '=', '<', 'AND', 'OR', 'COLLATE NOCASE =']
FUZZ_NOISE = ['SELECT', 'FROM', 'WHERE', 'people', ',', '(', ')', ';', "'", 'DELETE', 'ATTACH', 'PRAGMA', 'UNION']


def fuzz_hostile_call(r, sub):
    """A call one evaluation of which could be long: huge widths and precisions, long strings and patterns."""
    big, long = lambda: r.choice(FUZZ_BIG), lambda: sql_repeat(r.choice('a%_*b'), r.choice([100, 999, 5000]))
    k = r.randrange(8)
    if k == 0:
        return f"{r.choice(['printf', 'format'])}('{r.choice(FUZZ_FORMATS)}', {big()}, {big()}, {sub()})"
    if k == 1:
        return f"({long()} || {sub()}) {r.choice(['LIKE', 'GLOB'])} ({long()} || 'b')"
    if k == 2:
        return f"glob('*[' || {long()} || ']b', {long()} || {sub()})"
    if k == 3:
        extra = f", {sub()}" if r.random() < 0.5 else ''
        return f"{r.choice(['instr', 'replace', 'trim', 'ltrim'])}({long()} || {sub()}, {long()} || 'b'{extra})"
    if k == 4:
        f = r.choice(['upper', 'lower', 'quote', 'hex', 'soundex', 'unicode', 'json_quote', 'json_valid'])
        return f"{f}({long()} || {sub()})"
    if k == 5:
        return f"substr({long()}, {big()}, {big()})"
    if k == 6:
        return f"char({', '.join(r.choice(['1114111', big()]) for _ in range(r.randint(1, 20)))})"
    return "'" + r.choice('a%_') * r.choice([50, 500, 2000]) + "'"  # a long literal (2000: too long a query)


def fuzz_expr(r, cols, depth=3):
    u = r.random()
    if depth == 0 or u < 0.25:  # a leaf
        v = r.random()
        return r.choice(cols) if cols and v < 0.4 else r.choice(FUZZ_NUMBERS) if v < 0.7 else r.choice(FUZZ_STRINGS)
    sub = lambda: fuzz_expr(r, cols, depth - 1)
    if u < 0.45:
        return fuzz_hostile_call(r, sub)
    if u < 0.75:
        name = r.choice(list(FUZZ_FUNCTIONS))
        return f"{name}({', '.join(sub() for _ in range(r.choice(FUZZ_FUNCTIONS[name])))})"
    if u < 0.9:
        return f"({sub()} {r.choice(FUZZ_OPS)} {sub()})"
    if u < 0.95:
        return f"CASE WHEN {sub()} THEN {sub()} ELSE {sub()} END"
    return f"(SELECT {fuzz_expr(r, FUZZ_COLUMNS, depth - 1)} FROM people LIMIT 1)"


def fuzz_query(r, names):
    u, cols = r.random(), FUZZ_COLUMNS
    if u < 0.2:
        q = f"SELECT {fuzz_expr(r, [])}" + (f", {fuzz_expr(r, [])}" if r.random() < 0.3 else '')
    elif u < 0.55:
        q = f"SELECT {fuzz_expr(r, cols, 2)} FROM people"
        q += f" WHERE {fuzz_expr(r, cols, 2)}" if r.random() < 0.6 else ''
        q += f" ORDER BY {fuzz_expr(r, cols, 1)}" if r.random() < 0.3 else ''
        q += f" LIMIT {r.choice(FUZZ_NUMBERS)}" if r.random() < 0.3 else ''
    elif u < 0.67:
        q = f"SELECT {r.choice(FUZZ_AGGREGATES)}({fuzz_expr(r, cols, 2)}) FROM people"
        q += f" WHERE {fuzz_expr(r, cols, 1)}" if r.random() < 0.5 else ''
    elif u < 0.8:  # the tool's own query, for a real or a made-up name
        name = "'%s'" % r.choice(names).replace("'", "''") if r.random() < 0.7 else fuzz_expr(r, [], 1)
        q = f"SELECT {r.choice(cols)} FROM people WHERE name = {name}"
    elif u < 0.84:  # a join of 48,400 rows, each of which calls the functions again
        cols = [f'{t}.{c}' for t in 'ab' for c in FUZZ_COLUMNS]
        q = f"SELECT count(*), {fuzz_expr(r, cols, 1)} FROM people a, people b WHERE {fuzz_expr(r, cols, 2)}"
    elif u < 0.87:  # a recursive CTE, bounded or not
        q = (f"WITH RECURSIVE c(x) AS (SELECT {fuzz_expr(r, [], 1)} UNION ALL SELECT {fuzz_expr(r, ['x'], 2)} FROM c"
             f"{r.choice(['', ' LIMIT 100', ' LIMIT 100000'])}) SELECT {r.choice(FUZZ_AGGREGATES)}(x) FROM c")
    elif u < 0.92:
        q = f"SELECT {fuzz_expr(r, cols, 2)} FROM people ORDER BY {fuzz_expr(r, cols, 2)} LIMIT 3"
    else:  # keywords and punctuation spliced in
        words = fuzz_query(r, names).split(' ')
        for _ in range(r.randint(1, 3)):
            words.insert(r.randrange(len(words) + 1), r.choice(FUZZ_NOISE))
        q = ' '.join(words)
    return q


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_run_sql_bounds_random_hostile_queries(data_dir, seed):
    path = os.path.join(data_dir, db.DB_FILE)
    before, files = file_hash(path), sorted(os.listdir(data_dir))
    names = [p['name'] for p in data.read_jsonl(os.path.join(data_dir, 'people.jsonl'))]
    r = random.Random(seed)
    db.run_sql('SELECT 1', path)  # opening the connection is not the query's time
    answered = 0
    for _ in range(2000):
        q = fuzz_query(r, names)
        out, dt = timed_answer(q, path)
        assert isinstance(out, str) and len(out) <= db.MAX_CHARS, q
        assert dt < 0.1, f"{dt * 1000:.0f} ms: {q}"
        answered += not out.startswith('error:')
    assert answered >= 500, answered  # a quarter parse and run: the fuzz does not just bounce off the parser
    assert file_hash(path) == before and sorted(os.listdir(data_dir)) == files


def test_db_cli_reports_missing_files(tmp_path):
    with pytest.raises(SystemExit, match='not found'):
        db.create(str(tmp_path))
    with pytest.raises(SystemExit, match='not found'):
        db.main(['query', 'SELECT 1', '--data_dir', str(tmp_path)])


# ----------------------------------------------------------------------------- model
import math
import signal
import subprocess
import sys

import numpy as np
import torch

import model as M
import packing
import sample
import train

HERE = os.path.dirname(os.path.abspath(__file__))


def tiny_model(arch='transformer', seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(arch=arch, vocab_size=data.VOCAB_SIZE, n_layer=2, n_embd=32, n_head=4, d_state=8, **kw)
    return M.build_model(M.ModelConfig(**cfg)).eval()


def greedy_without_cache(m, prompt, n, stop):
    """Reference decoding: recompute the whole sequence for every new token."""
    seq, device = list(prompt), next(m.parameters()).device
    with torch.no_grad():
        for _ in range(n):
            nxt = int(m(torch.tensor([seq], device=device))[0, -1].argmax())
            seq.append(nxt)
            if nxt in stop:
                break
    return seq[len(prompt):]


def random_prompts(k, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (int(torch.randint(3, 17, (1,), generator=g)),), generator=g).tolist() for _ in range(k)]


def test_transformer_param_count_of_the_no_tool_config():
    m = M.build_model(M.ModelConfig(arch='transformer', vocab_size=data.VOCAB_SIZE, n_layer=2, n_embd=64))
    assert 160_000 <= m.num_params() <= 170_000


@pytest.mark.parametrize('arch', ['transformer', 'mamba'])
def test_fan_in_init_scales_each_weight_by_its_fan_in(arch):
    c = dict(arch=arch, vocab_size=data.VOCAB_SIZE, n_layer=2, n_embd=32)
    gpt2, fan_in = (torch.manual_seed(0) and M.build_model(M.ModelConfig(**c, init=i)) for i in ('gpt2', 'fan_in'))
    g = dict(gpt2.named_parameters())
    for name, p in fan_in.named_parameters():
        mod = fan_in.get_submodule(name.rsplit('.', 1)[0])
        if not name.endswith('weight') or not isinstance(mod, (torch.nn.Linear, torch.nn.Embedding)) \
                or getattr(mod, '_keep_init', False):
            assert torch.equal(p, g[name]), name            # norms and Mamba's own inits are the same in both
            continue
        std = p.shape[1] ** -0.5
        assert p.abs().max() <= 3 * std + 1e-6, name       # cut at 3 sd
        assert 0.7 * std < p.std() < 1.1 * std, name       # a cut normal's sd is 0.986 of the uncut one
        assert g[name].std() < 0.025, name                 # gpt2: 0.02 (residual outputs smaller)
    with pytest.raises(ValueError, match='unknown init'):
        M.build_model(M.ModelConfig(**c, init='xavier'))


def test_transformer_cached_generation_equals_recomputation():
    m = tiny_model()
    # make some logits peaky so generation is not a constant: scale the head
    with torch.no_grad():
        m.head.weight.mul_(20)
    prompts = random_prompts(5)
    got = M.generate(m, prompts, 24, {data.EOT})
    for p, g in zip(prompts, got):
        assert g == greedy_without_cache(m, p, 24, {data.EOT})
    assert len({tuple(g) for g in got}) > 1


@pytest.mark.parametrize('arch', ['transformer', 'mamba'])
def test_packed_documents_do_not_attend_to_each_other(arch):
    """The logits of a document inside a packed row equal those of the document alone (Mamba: no state,
    neither the SSM's nor the conv's, crosses a document start), and so do the gradients they send back."""
    m = tiny_model(arch)
    a, b, c = [5, 6, 7, 8, 9], [10, 11, 12], [13, 14, 15, 16, 17, 18, 19]
    rows = torch.tensor([a + b + [data.PAD] * 2, c + [data.PAD] * 3])
    pos = torch.tensor([list(range(5)) + list(range(3)) + [0, 0], list(range(7)) + [0] * 3])
    seg = torch.tensor([[0] * 5 + [1] * 3 + [-1] * 2, [2] * 7 + [-1] * 3])
    packed = m(rows, pos=pos, seg=seg)
    with torch.no_grad():
        alone = [m(torch.tensor([x]))[0] for x in (a, b, c)]
    for got, want in zip((packed[0, :5], packed[0, 5:8], packed[1, :7]), alone):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    packed[0, 5:8].sum().backward()     # the second document's loss reaches no weight through the first's tokens
    g_packed = {k: p.grad.clone() for k, p in m.named_parameters() if p.grad is not None}
    m.zero_grad()
    m(torch.tensor([b]))[0].sum().backward()
    for k, p in m.named_parameters():
        torch.testing.assert_close(g_packed[k], p.grad, rtol=1e-4, atol=1e-6, msg=k)
    with torch.no_grad():  # and without the document ids they would differ: the test can fail
        leaky = m(rows, pos=pos)
    assert not torch.allclose(leaky[0, 5:8], alone[1], atol=1e-4)


def test_packer_without_doc_mask_reads_a_row_as_one_text():
    """doc_mask=False: one segment per row and positions that run on, so the second document's logits
    equal those of the whole row read as plain text (and differ from the document alone)."""
    docs = [[5, 6, 7, 8, 9], [10, 11, 12]]
    flat = sum(docs, [])
    tok = {'tokens': np.array(flat, np.uint16), 'mask': np.ones(len(flat), np.uint8),
           'offsets': np.array([0, 5, 8]), 'split': np.array([0, 0], np.uint8)}
    outs = {}
    for doc_mask in (True, False):
        packer = packing.Packer([(tok, np.array([0, 1]), 1.0)], 10, 0, doc_mask=doc_mask)
        idx, tgt, w, pos, seg = packer.build([0])
        outs[doc_mask] = (idx, pos, seg)
    idx, pos, seg = (torch.from_numpy(a) for a in outs[False])
    assert pos[0, :8].tolist() == list(range(8)) and set(seg[0, :8].tolist()) == {0} and seg[0, 8:].tolist() == [-1, -1]
    assert len(set(outs[True][2][0, :8].tolist())) == 2 and outs[True][1][0, :8].tolist() != list(range(8))
    m = tiny_model()
    with torch.no_grad():
        packed = m(idx, pos=pos, seg=seg)
        as_text = m(idx[:, :8])
    torch.testing.assert_close(packed[0, :8], as_text[0], rtol=1e-5, atol=1e-5)


def test_loss_never_covers_user_text_or_tool_result(tmp_path):
    """Changing the tool's result text (or the question) changes no loss term."""
    def loss_terms(question, result):
        msgs = [{'role': 'user', 'content': question}, {'role': 'sql', 'content': 'SELECT 1'},
                {'role': 'result', 'content': result}, {'role': 'assistant', 'content': 'It is X'}]
        ids, mask = data.render(msgs)
        tok = {'tokens': np.array(ids, np.uint16), 'mask': np.array(mask, np.uint8),
               'offsets': np.array([0, len(ids)]), 'split': np.array([0], np.uint8)}
        idx, tgt, w, pos, seg = packing.Packer([(tok, np.array([0]), 1.0)], 256, 0).build([0])
        return [(int(t), float(x)) for t, x in zip(tgt[0], w[0]) if x > 0]
    base = loss_terms('Where?', 'Lake Amy')
    assert base == loss_terms('Where?', 'A much longer and different result text')
    assert base == loss_terms('Who? What? Where, exactly?', 'Lake Amy')
    assert data.decode([t for t, _ in base]) == '<|sql|>SELECT 1<|/sql|>It is X<|eot|>'


# ----------------------------------------------------------------------------- config
def test_config_files_and_overrides():
    cfg = train.get_config([os.path.join(HERE, 'configs/no_tool.py'), '--n_people=20', '--arch=mamba', '--learning_rate=1'])
    assert cfg['tool'] is False and cfg['n_people'] == 20 and cfg['arch'] == 'mamba' and cfg['learning_rate'] == 1.0
    for argv, msg in [(['--nope=1'], "unknown config key 'nope'"), (['--n_people=abc'], "'n_people'.*must be int"),
                      (['--tool=3'], "'tool'.*must be bool"), (['--n_people'], 'expected --key=value'),
                      (['configs/missing.py'], 'not found')]:
        with pytest.raises(SystemExit, match=msg):
            train.get_config(argv)


def test_config_file_with_unknown_key(tmp_path):
    bad = tmp_path / 'bad.py'
    bad.write_text("n_layers = 3\n")
    with pytest.raises(SystemExit, match="unknown config key 'n_layers'"):
        train.get_config([str(bad)])


def test_resume_check_is_derived_from_the_keys():
    cfg = train.get_config([os.path.join(HERE, 'configs/no_tool.py')])
    # a checkpoint written before calm's keys left train.py's defaults holds them, at their defaults
    old = {**cfg, **calm.CONFIG}
    assert train.resume_mismatch(old, cfg) is None
    assert train.resume_mismatch({**old, 'max_iters': 1, 'threads': 3, 'eval_interval': 7}, cfg) is None
    assert train.resume_mismatch({**old, 'learning_rate': 1.0}, cfg) == 'learning_rate'
    assert train.resume_mismatch({**old, 'calm_gate': True}, cfg) == 'calm_gate'
    new_key = dict(cfg)
    del new_key['weight_decay']             # a checkpoint older than a key: it had the key's default
    assert train.resume_mismatch(new_key, {**cfg, 'weight_decay': train.DEFAULTS['weight_decay']}) is None
    assert train.resume_mismatch(new_key, {**cfg, 'weight_decay': 0.5}) == 'weight_decay'


def test_composition_keys_belong_to_calm_runs():
    assert not [k for k in train.DEFAULTS if k.startswith('calm_') or k in calm.CONFIG]
    cfg = train.get_config([os.path.join(HERE, 'configs/calm.py')], now=False)   # its anchor need not exist yet
    assert {k: cfg[k] for k in calm.CONFIG}.keys() == calm.CONFIG.keys() and cfg['calm_gate'] is True
    assert 'calm_gate' not in train.get_config([os.path.join(HERE, 'configs/tool.py')])
    with pytest.raises(SystemExit, match="'calm_gate' is for arch='calm'"):
        train.get_config([os.path.join(HERE, 'configs/tool.py'), '--calm_gate=True'])


# ----------------------------------------------------------------------------- bad input
# Every script checks its values before any work: exit code 1, a one-line `error: ...` naming the key (the
# last line of stderr), no traceback, nothing written. In the argv, {tmp} is the test's tmp_path, which holds
# a file `afile`, an empty directory `empty` and the sweep configs of SWEEPS; a train.py run gets
# --out_dir/--data_dir under it first (a case's own argv comes after, and wins).
SWEEPS = {'sweep.py': "dict(n_embd=[32])", 'sweep_unknown.py': "dict(n_layerz=[1, 2])",
          'sweep_heads.py': "dict(n_embd=[32, 30], n_head=[4])"}
BAD_INPUT = [  # (script, argv, the key the error names)
    ('train.py', ['--arch=lstm'], 'arch'),
    ('train.py', ['--n_embd=30', '--n_head=4'], 'n_head'),
    ('train.py', ['--device=tpu'], 'device'),
    ('train.py', ['--warmup_iters=-5'], 'warmup_iters'),
    ('data.py', ['people', '--num', '-5'], 'num'),
    ('data.py', ['people', '--held_out', '1.5'], 'held_out'),
    ('data.py', ['people', '--unseen', '-1'], 'unseen'),
    ('data.py', ['all', '--bios_per_person', '0'], 'bios_per_person'),
    ('data.py', ['people', '--extra', 'salary'], 'extra'),
    ('data.py', ['all', '--data_dir', '{tmp}/afile'], 'data_dir'),
    ('sample.py', ['--out_dir={tmp}/nowhere'], 'out_dir'),
    ('sample.py', ['--out_dir={tmp}/empty'], 'out_dir'),
    ('sample.py', ['--out_dir={tmp}/empty', '--max_per_split=-1'], 'max_per_split'),
    ('sample.py', ['--out_dir={tmp}/empty', '--device=tpu'], 'device'),
    ('sample.py', ['--out_dir={tmp}/empty', '--question='], 'question'),
    ('db.py', ['query', 'SELECT 1', '--data_dir', '{tmp}/afile'], 'data_dir'),
    ('db.py', ['query', ' ', '--data_dir', '{tmp}/empty'], 'sql'),
    ('bench.py', ['data', '--num', '0'], 'num'),
    ('bench.py', ['scan', '--threads', '-1'], 'threads'),
    ('calm_experiment.py', ['--out={tmp}/exp', '--arch=lstm'], 'arch'),
    ('calm_experiment.py', ['--out={tmp}/exp', '--calm_gate=yes'], 'calm_gate'),
    ('calm_experiment.py', ['--out={tmp}/exp', '--n_people=1'], 'held_out'),   # a stage's config: train.py's check
    ('sweep.py', ['{tmp}/sweep.py', '--launcher=ssh'], 'launcher'),
    ('sweep.py', ['{tmp}/sweep_unknown.py'], 'n_layerz'),
    ('sweep.py', ['{tmp}/sweep_heads.py'], 'n_head'),   # the second grid point: every point is checked first
]


def bad_input_dir(tmp_path):
    (tmp_path / 'afile').write_text('not a directory')
    (tmp_path / 'empty').mkdir()
    for name, grid in SWEEPS.items():
        (tmp_path / name).write_text(f"grid = {grid}\nbase = dict(max_iters=2, data_dir={str(tmp_path / 'data')!r})\n"
                                     f"out_root = {str(tmp_path / 'sweep_out')!r}\n")
    return sorted(str(p) for p in tmp_path.rglob('*'))


@pytest.mark.parametrize('script, argv, key', BAD_INPUT,
                         ids=[f"{s[:-3]}-{'_'.join(a)[:40]}" for s, a, _ in BAD_INPUT])
def test_bad_config_input_to_any_script_is_a_one_line_error_naming_the_key(tmp_path, script, argv, key):
    before = bad_input_dir(tmp_path)
    first = [f'--out_dir={tmp_path}/out', f'--data_dir={tmp_path}/data'] if script == 'train.py' else []
    r = subprocess.run([sys.executable, os.path.join(HERE, script), *first, *[a.format(tmp=tmp_path) for a in argv]],
                       cwd=HERE, capture_output=True, text=True, timeout=120, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    last = (r.stderr.strip().splitlines() or [''])[-1]
    assert r.returncode != 0 and last.startswith('error: ') and key in last, r.stderr[-2000:]
    assert 'Traceback' not in r.stderr
    assert sorted(str(p) for p in tmp_path.rglob('*')) == before   # nothing written


BAD_CONFIG = [  # train.py's checks in-process (get_config): (argv, the key the error names)
    (['--learning_rate=-0.1'], 'learning_rate'), (['--batch_size=0'], 'batch_size'), (['--data_dir={tmp}/afile'], 'data_dir'),
    (['--n_people=0'], 'n_people'), (['--n_layer=0'], 'n_layer'), (['--n_embd=48', '--n_head=16'], 'n_head'),
    (['--held_out=1.0'], 'held_out'), (['--held_out=-0.1'], 'held_out'), (['--n_people=2', '--held_out=0.9'], 'held_out'),
    (['--n_unseen=-1'], 'n_unseen'), (['--seed=-1'], 'seed'), (['--bios_per_person=0'], 'bios_per_person'),
    (['--mix_qa=-1.0'], 'mix_qa'), (['--mix_qa_tool=0'], 'mix_qa_tool'), (['--bios_splits=train,test'], 'bios_splits'),
    (['--bios_splits='], 'bios_splits'), (['--block_size=0'], 'block_size'), (['--grad_accum=0'], 'grad_accum'),
    (['--max_iters=0'], 'max_iters'), (['--min_lr=0.1'], 'min_lr'), (['--weight_decay=-0.1'], 'weight_decay'),
    (['--beta1=1.0'], 'beta1'), (['--beta2=-0.5'], 'beta2'), (['--grad_clip=-1'], 'grad_clip'),
    (['--dtype=float16'], 'dtype'), (['--device=cuda:x'], 'device'), (['--device=gpu'], 'device'),
    (['--eval_interval=0'], 'eval_interval'), (['--eval_batch=0'], 'eval_batch'), (['--eval_max=-1'], 'eval_max'),
    (['--ckpt_interval=0'], 'ckpt_interval'), (['--log_interval=0'], 'log_interval'), (['--threads=-1'], 'threads'),
    (['--mlp_hidden=-1'], 'mlp_hidden'), (['--arch=mamba', '--d_state=0'], 'd_state'), (['--expand=0'], 'expand'),
    (['--out_dir='], 'out_dir'), (['--out_dir={tmp}/afile'], 'out_dir'), (['--out_dir={tmp}/afile/run'], 'out_dir'),
    (['--init_from={tmp}/nowhere'], 'init_from'), (['--init_from={tmp}/empty'], 'init_from'),
    (['--arch=calm'], 'anchor_dir'), (['--arch=calm', '--anchor_dir={tmp}/empty'], 'augment_dirs'),
    (['--arch=calm', '--anchor_dir={tmp}/nowhere', '--augment_dirs={tmp}/empty'], 'anchor_dir'),
    (['--arch=calm', '--anchor_dir=a', '--augment_dirs=b', '--connect_every=0'], 'connect_every'),
    (['--arch=calm', '--anchor_dir=a', '--augment_dirs=b', '--calm_gate_reads=True'], 'calm_gate_reads'),
    (['--arch=calm', '--anchor_dir=a', '--augment_dirs=b', '--init_from=c'], 'init_from'),
    (['--lr_decay=linear'], 'lr_decay'), (['--stop_recall=1.5'], 'stop_recall'),
    (['--tool=False'], 'mix_qa'), (['--mix_qa=1.0', '--mix_qa_tool=0.0'], 'mix_qa_tool'),  # asked what is not taught
    (['--stop_patience=-1'], 'stop_patience'), (['--max_exposures=-1.0'], 'max_exposures'), (['--order_seed=-2'], 'order_seed'),
    (['--people_options=n_cities'], 'people_options'), (['--people_options=num=5'], 'people_options'),
    (['--people_options=n_cities=many'], 'people_options'), (['--people_options=n_cities=0'], 'people_options'),
]


@pytest.mark.parametrize('argv, key', BAD_CONFIG, ids=['_'.join(a)[:50] for a, _ in BAD_CONFIG])
def test_bad_config_values_are_named_before_any_work(tmp_path, capsys, argv, key):
    before = bad_input_dir(tmp_path)
    with pytest.raises(SystemExit) as e:
        train.get_config([f'--out_dir={tmp_path}/out', f'--data_dir={tmp_path}/data',
                          *[a.format(tmp=tmp_path) for a in argv]])
    msg = str(e.value.code)
    assert msg.startswith('error: ') and key in msg and '\n' not in msg, msg
    assert sorted(str(p) for p in tmp_path.rglob('*')) == before


BAD_OPTIONS = [  # the other scripts' own options, in-process: (module, argv, the key the error names)
    ('sweep', ['{tmp}/sweep.py', '--max_parallel=0'], 'max_parallel'), ('sweep', ['{tmp}/sweep.py', '--nope=1'], 'nope'),
    ('sweep', ['{tmp}/sweep.py', '--gpus=-1'], 'gpus'), ('sweep', ['{tmp}/sweep.py', '--timeout_min=0'], 'timeout_min'),
    ('sweep', ['{tmp}/sweep.py', '--cpus=two'], 'cpus'), ('sweep', ['{tmp}/sweep.py', '--plot_only=True'], 'plot_only'),
    ('calm_experiment', ['--out={tmp}/exp', '--calm_iters=0'], 'calm_iters'),
    ('calm_experiment', ['--out={tmp}/exp', '--anchor_people=-1'], 'anchor_people'),
    ('calm_experiment', ['--out={tmp}/exp', '--augment_iters=abc'], 'augment_iters'),
    ('calm_experiment', ['--out={tmp}/exp', '--threads=-1'], 'threads'),
    ('calm_experiment', ['--out={tmp}/afile'], 'out'),
    ('data', ['people', '--data_dir', '{tmp}/data', '--first_year', '2000', '--last_year', '1990'], 'last_year'),
    ('data', ['people', '--data_dir', '{tmp}/data', '--name_locales', 'xx_YY'], 'name_locales'),
    ('data', ['people', '--data_dir', '{tmp}/afile/sub'], 'data_dir'),
    ('db', ['create', '--data_dir', '{tmp}/nowhere'], 'data_dir'),
    ('sample', ['--out_dir={tmp}/empty', '--tool', '--no_tool'], 'tool'),
]


@pytest.mark.parametrize('module, argv, key', BAD_OPTIONS, ids=[f"{m}-{'_'.join(a)[-40:]}" for m, a, _ in BAD_OPTIONS])
def test_bad_config_options_of_the_other_scripts_are_named(tmp_path, module, argv, key):
    before = bad_input_dir(tmp_path)
    with pytest.raises(SystemExit) as e:
        {'sweep': sweep, 'calm_experiment': calm_experiment, 'data': data, 'db': db, 'sample': sample}[module].main(
            [a.format(tmp=tmp_path) for a in argv])
    msg = str(e.value.code)
    assert msg.startswith('error: ') and key in msg and '\n' not in msg, msg
    assert sorted(str(p) for p in tmp_path.rglob('*')) == before


def test_bad_config_calm_heads_must_split_the_anchors_width(tmp_path):
    for run in ('anchor', 'augment'):   # what check_config reads of a run: its checkpoint names and config.json
        (tmp_path / run).mkdir()
        (tmp_path / run / 'ckpt_00000001.pt').write_bytes(b'')
        (tmp_path / run / 'config.json').write_text(json.dumps({'n_embd': 24}))
    argv = ['--arch=calm', f'--anchor_dir={tmp_path}/anchor', f'--augment_dirs={tmp_path}/augment',
            f'--out_dir={tmp_path}/out', f'--data_dir={tmp_path}/data']
    assert train.get_config(argv + ['--n_head=3'])['n_head'] == 3   # 24 / 3 = 8 per head
    for n_head in (5, 8):   # not a divisor; an odd head width (3)
        with pytest.raises(SystemExit, match="'n_head'.*anchor's width"):
            train.get_config(argv + [f'--n_head={n_head}'])


def test_bad_config_every_key_has_a_check():
    """A new key of train.py (or calm.py) needs a line in train.RANGES or in check_config: only bools take any value."""
    ranged = {k for keys, _, _ in train.RANGES for k in keys}
    own_lines = {'out_dir', 'data_dir', 'device', 'bios_splits', 'init_from', 'anchor_dir', 'augment_dirs', 'people_options'}
    assert set(train.KEYS) - ranged - own_lines == {k for k, v in train.KEYS.items() if type(v) is bool}


def test_every_shipped_config_passes_the_checks():
    for path in sorted(glob.glob(os.path.join(HERE, 'configs', '*.py'))):
        if 'sweep' in os.path.basename(path):
            sweep.load_sweep([path, '--launcher=slurm'])   # every grid point's config is checked
        else:
            train.get_config([path], now=False)   # configs/calm.py's anchor is made by calm_experiment.py's stages
    with pytest.raises(SystemExit, match="'device'.*GPU"):
        if not torch.cuda.is_available():
            train.get_config(['--device=cuda'])
        else:
            train.get_config([f'--device=cuda:{torch.cuda.device_count()}'])
    assert train.get_config(['--device=cuda'], now=False)['device'] == 'cuda'   # e.g. a SLURM sweep's login node

# ----------------------------------------------------------------------------- training runs
TINY = ['--n_people=30', '--n_unseen=5', '--n_layer=1', '--n_embd=32', '--n_head=2', '--block_size=256',
        '--batch_size=4', '--eval_interval=1000', '--eval_max=10', '--log_interval=1', '--warmup_iters=2']


def run_train(out, *extra, data_dir, wait=True, env=None):
    cmd = [sys.executable, os.path.join(HERE, 'train.py'), os.path.join(HERE, 'configs/tool.py'), *TINY,
           f'--out_dir={out}', f'--data_dir={data_dir}', *extra]
    p = subprocess.Popen(cmd, cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env={**os.environ, 'OMP_NUM_THREADS': '1', **(env or {})})
    if wait:
        out_text, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out_text[-2000:]
        return out_text
    return p


@pytest.fixture(scope='session')
def tiny_data(tmp_path_factory):
    d = str(tmp_path_factory.mktemp('tiny'))
    data.prepare(d, num=30, held_out=0.2, unseen=5, bios_per_person=1, seed=0)
    return d


def final_weights(out):
    path, ckpt = sample.load_checkpoint(out)
    return ckpt['step'], ckpt['model']


def test_train_writes_results_metrics_and_plot(tmp_path, tiny_data):
    out = str(tmp_path / 'run')
    run_train(out, '--max_iters=6', '--ckpt_interval=3', data_dir=tiny_data)
    res = json.load(open(os.path.join(out, 'results.json')))
    for k in ('params', 'n_facts', 'recall', 'facts_recalled', 'tokens_seen', 'wall_seconds', 'eval_seconds'):
        assert k in res
    assert res['eval_seconds'] > 0   # the final evaluation, at least
    assert set(res['recall']) == {'trained', 'held_out', 'unseen'} and res['n_facts'] == 24 * 4
    assert os.path.exists(os.path.join(out, 'curves.png')) and os.path.exists(os.path.join(out, 'config.json'))
    steps = [json.loads(l)['step'] for l in open(os.path.join(out, 'metrics.jsonl')) if 'loss' in l]
    assert steps == list(range(1, 7))
    assert len(sample.list_checkpoints(out)) == 2  # the last two kept


def test_recall_is_the_exact_fraction_of_questions(tiny_data, monkeypatch):
    """All but one question of each split answered right: recall is (n - 1) / n as a Python float, not a float32
    rounding of it (which put 380 of 400 at 0.94999999, below a 95% threshold)."""
    questions = sample.eval_questions(tiny_data, True)
    gold = {q: g for qs in questions.values() for q, g in qs}
    wrong = {qs[0][0] for qs in questions.values()}
    monkeypatch.setattr(sample, 'answer', lambda model, qs, **kw: [
        {'answer': 'I do not know' if q in wrong else f'It is {gold[q]}'} for q in qs])
    recall = sample.evaluate(None, dict(tool=True, eval_batch=8), tiny_data)
    assert recall == {s: (len(qs) - 1) / len(qs) for s, qs in questions.items()}


@pytest.mark.parametrize("rows", ["packed", "one dialog, cpu kernel"])
def test_resume_after_sigkill_is_bit_identical(tmp_path, tiny_data, rows):
    ref, crash = str(tmp_path / 'ref'), str(tmp_path / 'crash')
    extra = ['--max_iters=16', '--ckpt_interval=4'] + (['--one_per_row=True'] if rows != 'packed' else [])
    log = run_train(ref, *extra, data_dir=tiny_data)
    if rows != 'packed':   # the C++ step where it builds (the tests of transformer_cpu.cpp check that it does)
        assert ('transformer_cpu.cpp' in log) == M.cpu_kernel_available(quiet=True)
    p = run_train(crash, *extra, data_dir=tiny_data, wait=False,
                  env={'TRAIN_SIGKILL_AT_STEP': '7'})   # killed between the checkpoints of steps 4 and 8
    p.communicate(timeout=300)
    assert p.returncode == -signal.SIGKILL
    step_at_kill = sample.load_checkpoint(crash)[1]['step']
    assert step_at_kill == 4
    log = run_train(crash, *extra, data_dir=tiny_data)
    assert 'resumed from' in log
    (s1, w1), (s2, w2) = final_weights(ref), final_weights(crash)
    assert s1 == s2 == 16
    for k in w1:
        assert torch.equal(w1[k], w2[k]), k
    loss = lambda out: [json.loads(l)['loss'] for l in open(os.path.join(out, 'metrics.jsonl')) if '"loss"' in l]
    assert loss(ref) == loss(crash)  # the same curve, logged once per step


def test_sigterm_checkpoints_and_exits_cleanly(tmp_path, tiny_data):
    out = str(tmp_path / 'term')
    p = run_train(out, '--max_iters=100000', '--ckpt_interval=100000', data_dir=tiny_data, wait=False)
    deadline = time.time() + 120
    metrics = os.path.join(out, 'metrics.jsonl')
    while not (os.path.exists(metrics) and os.path.getsize(metrics) > 0) and time.time() < deadline:
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    text, _ = p.communicate(timeout=60)
    assert p.returncode == 0, text[-1000:]
    assert 'SIGTERM' in text
    step = sample.load_checkpoint(out)[1]['step']
    assert 1 <= step < 100000


def test_corrupt_checkpoint_falls_back_and_config_mismatch_is_named(tmp_path, tiny_data, capsys):
    out = str(tmp_path / 'c')
    run_train(out, '--max_iters=4', '--ckpt_interval=2', data_dir=tiny_data)
    newest, older = sample.list_checkpoints(out)
    with open(newest, 'r+b') as f:  # truncate the newest checkpoint
        f.truncate(100)
    path, ckpt = sample.load_checkpoint(out)
    assert path == older and ckpt['step'] == 2
    assert 'unreadable' in capsys.readouterr().err
    cmd = [sys.executable, os.path.join(HERE, 'train.py'), os.path.join(HERE, 'configs/tool.py'), *TINY,
           f'--out_dir={out}', f'--data_dir={tiny_data}', '--max_iters=6', '--n_embd=48']
    r = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "config key 'n_embd'" in r.stderr


def test_ddp_two_processes_match_one_process(tmp_path, tiny_data):
    one, two = str(tmp_path / 'one'), str(tmp_path / 'two')
    run_train(one, '--max_iters=5', '--batch_size=2', '--grad_accum=2', data_dir=tiny_data)
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc-per-node=2', '--master-port=29533',
           os.path.join(HERE, 'train.py'), os.path.join(HERE, 'configs/tool.py'), *TINY, f'--out_dir={two}',
           f'--data_dir={tiny_data}', '--max_iters=5', '--batch_size=2', '--grad_accum=1']
    r = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-1500:] + r.stderr[-1500:]
    loss = lambda out: [json.loads(l)['loss'] for l in open(os.path.join(out, 'metrics.jsonl')) if '"loss"' in l]
    assert len(loss(one)) == len(loss(two)) == 5
    np.testing.assert_allclose(loss(one), loss(two), rtol=1e-5)
    (_, w1), (_, w2) = final_weights(one), final_weights(two)
    for k in w1:
        torch.testing.assert_close(w1[k], w2[k], rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- recall count, stopping rule, one-document rows
def test_an_answer_is_right_only_when_it_ends_with_the_gold_value():
    right = sample.is_right
    assert right('Ada Quinn was born in Bryanside', 'Bryanside') and right('Bryanside', 'Bryanside')
    assert right('Ada Quinn works as Engineer, civil  ', 'Engineer, civil')
    assert not right('Ada Quinn was born in Bryanside or Lake Mary', 'Bryanside')   # several values listed
    assert not right('Ada Quinn was born in North Bryansides', 'Bryanside')          # a longer value
    assert not right('Ada Quinn was born in NorthBryanside', 'Bryanside')            # not a whole word
    assert not right('', 'Bryanside')


class NextTokenOracle(torch.nn.Module):
    """A stand-in model for value_bits: at each position, all its mass on the token that follows that prefix in
    one of the documents (sure = True), or on no token in particular (uniform logits)."""
    def __init__(self, seqs, sure):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.next = {tuple(s[:j + 1]): s[j + 1] for s in seqs for j in range(len(s) - 1)}
        self.sure = sure

    def forward(self, idx, at):
        rows = []
        for r, j in at.nonzero().tolist():
            row = torch.zeros(data.VOCAB_SIZE)
            if self.sure:
                row[self.next[tuple(idx[r, :j + 1].tolist())]] = 50.0
            rows.append(row)
        return torch.stack(rows)


def test_value_bits_counts_the_gold_values_bytes_against_their_pools(data_dir):
    docs = sample.eval_docs(data_dir, False, 40)['train']
    seqs = [data.render(d['messages'])[0] for d in docs]
    pool_bits = data.load_meta(data_dir)['bits_per_fact']
    carried = np.mean([pool_bits[d['attribute']] for d in docs])
    # a model sure of every next token lacks nothing of the value: it holds all the bits its pools carry
    bits = sample.value_bits(NextTokenOracle(seqs, sure=True), docs, pool_bits, batch_size=16)
    assert bits['lacking'] < 1e-6 and abs(bits['held'] - carried) < 1e-6
    # uniform over the vocabulary: each of the value's bytes (only those) lacks log2(vocabulary size) bits
    per_fact = np.mean([len(data.encode(d['answer'])) for d in docs]) * math.log2(data.VOCAB_SIZE)
    bits = sample.value_bits(NextTokenOracle(seqs, sure=False), docs, pool_bits, batch_size=16)
    assert abs(bits['lacking'] - per_fact) < 1e-6 and abs(bits['held'] - (carried - per_fact)) < 1e-6
    # a real model, batched and padded, against its loss on one dialog at a time
    torch.manual_seed(0)
    model = M.build_model(M.ModelConfig(vocab_size=data.VOCAB_SIZE, n_layer=1, n_embd=16, n_head=2)).eval()
    one = []
    for s, d in zip(seqs[:8], docs[:8]):
        n = len(data.encode(d['answer']))
        with torch.no_grad():
            logp = F.log_softmax(model(torch.tensor([s[:-1]])), -1)[0].double()
        one.append(-sum(logp[j - 1, s[j]].item() for j in range(len(s) - 1 - n, len(s) - 1)) / math.log(2))
    assert abs(sample.value_bits(model, docs[:8], pool_bits, batch_size=3)['lacking'] - np.mean(one)) < 1e-4


def test_stopper_stops_at_the_threshold_on_a_plateau_and_at_the_cap():
    s = train.Stopper(target=0.95)
    assert [s.evaluated(r) for r in (0.1, 0.5, 0.9)] == [None] * 3 and s.evaluated(0.96).startswith('recall')
    s = train.Stopper(patience=2)
    assert [s.evaluated(r) for r in (0.0, 0.0, 0.0, 0.1, 0.3, 0.302, 0.6, 0.6)] == [None] * 8   # zeros: no plateau yet
    assert s.evaluated(0.59).startswith('plateau') and s.best == 0.6
    s = train.Stopper(cap=10)
    assert s.exposed(9.9) is None and s.exposed(10.0).startswith('exposure cap')
    assert train.Stopper().evaluated(1.0) is None and train.Stopper().exposed(1e9) is None   # all rules off
    s = train.Stopper(target=0.95)   # a sample at the target is confirmed on every trained fact; below it, not asked
    assert s.evaluated(0.96, confirm=lambda: 0.948) is None and s.evaluated(0.9, confirm=lambda: 1 / 0) is None
    assert s.evaluated(0.95, confirm=lambda: 0.951) == 'recall 0.951 >= 0.95'
    s, t = train.Stopper(patience=3), train.Stopper(patience=3)
    for r in (0.2, 0.1):
        s.evaluated(r)
    t.load_state_dict(s.state_dict())
    assert [t.evaluated(0.1), t.evaluated(0.1)] == [None, t.reason] and t.reason.startswith('plateau')


def test_a_run_stops_on_a_plateau_and_at_the_exposure_cap(tmp_path, tiny_data):
    out = str(tmp_path / 'plateau')   # an untrained model recalls nothing: a flat zero is no plateau
    run_train(out, '--max_iters=6', '--eval_interval=2', '--stop_patience=1', data_dir=tiny_data)
    res = json.load(open(os.path.join(out, 'results.json')))
    assert res['steps'] == 6 and res['stop_reason'] == 'max_iters'
    assert sample.load_checkpoint(out)[1]['step'] == 6
    cap = str(tmp_path / 'cap')
    run_train(cap, '--max_iters=100', '--max_exposures=2.0', '--one_per_row=True', data_dir=tiny_data)
    res = json.load(open(os.path.join(cap, 'results.json')))
    per_step = 4 / 96                                  # 4 rows of one dialog each, 96 trained facts
    assert res['stop_reason'].startswith('exposure cap') and 2.0 <= res['exposures_per_fact'] < 2.0 + per_step + 1e-9
    assert res['steps'] == 48
    log = run_train(cap, '--max_iters=100', '--max_exposures=2.0', '--one_per_row=True', data_dir=tiny_data)
    assert 'resumed from' in log and json.load(open(os.path.join(cap, 'results.json')))['steps'] == 48  # stays stopped


def test_order_seed_orders_the_documents_and_seed_the_rest(data_dir):
    """order_seed alone sets the training documents' order: seed 1 with order_seed 0 reads seed 0's batches (and
    the reverse); by default (-1) each seed its own order. (train.py seeds the initialization with seed alone.)"""
    cfg = train.get_config([f'--data_dir={data_dir}', '--batch_size=4'], now=False)

    def first_rows(**kw):
        return packing.make_packer({**cfg, **kw}, data_dir).next_rows(4)[0]
    orders = {(s, o): first_rows(seed=s, order_seed=o) for s in (0, 1) for o in (-1, 0, 1)}
    assert not np.array_equal(orders[0, -1], orders[1, -1])
    for s in (0, 1):
        assert np.array_equal(orders[s, -1], orders[s, s]) and np.array_equal(orders[1 - s, s], orders[s, s])


def test_one_document_rows_give_the_loss_of_packed_rows():
    """The same dialogs in packed rows and in rows of one dialog each (length-batched): equal loss per
    document, for both architectures; and one-document batches group similar lengths."""
    tok = {'tokens': np.array(list(range(30, 90)), np.uint16), 'mask': np.ones(60, np.uint8),
           'offsets': np.array([0, 7, 19, 24, 40, 47, 60]), 'split': np.zeros(6, np.uint8)}
    ids = np.arange(6)
    packed = packing.Packer([(tok, ids, 1.0)], 32, 0)
    single = packing.Packer([(tok, ids, 1.0)], 32, 0, one_per_row=True, batch_rows=2)
    for arch in ('transformer', 'mamba'):
        m = tiny_model(arch)

        def doc_losses(packer, n_rows, one):
            out = {}
            idx, tgt, w, pos, seg = (torch.from_numpy(a) for a in packer.build(range(n_rows)))
            with torch.no_grad():
                logits = m(idx) if one else m(idx, pos=pos, seg=seg)
            ce = F.cross_entropy(logits.transpose(1, 2), tgt, reduction='none') * w
            for r in range(n_rows):
                for j in range(packer.row_start[r], packer.row_start[r + 1]):
                    sel = seg[r] == (j if not one else j)
                    out[int(packer.doc[j])] = float(ce[r][sel].sum())
            return out
        a, b = doc_losses(packed, packed.n_rows, False), doc_losses(single, single.n_rows, True)
        assert a.keys() == b.keys() == set(range(6))
        for k in a:
            assert abs(a[k] - b[k]) < 1e-4 * max(1, abs(a[k])), (arch, k, a[k], b[k])
    lens = [int(single.lens[r]) for r in range(single.n_rows)]
    assert sorted(lens[0:2]) == lens[0:2] or sorted(lens[0:2], reverse=True) == lens[0:2]
    assert single.copies_seen() == [0.0]
    single.next_rows(2)
    assert single.copies_seen() == [2 / 6]


def test_rope_turns_each_pair_by_its_angle_and_attention_sees_only_distances():
    """apply_rope against the rotation written out in float64, (x_i, x_{i+e/2}) turned by pos * theta^(-2i/e),
    with tables over 1 head or written out over all of them; q . k after rotary depends on the distance only."""
    torch.manual_seed(0)
    b, t, h, e, theta = 2, 7, 3, 8, 10000.0
    x, pos = torch.randn(b, t, h, e), torch.randint(0, 50, (b, t))
    ang = pos.double()[..., None, None] * theta ** (-torch.arange(0, e, 2).double() / e)     # (b, t, 1, e/2)
    x1, x2 = x.double().chunk(2, -1)
    want = torch.cat([x1 * ang.cos() - x2 * ang.sin(), x2 * ang.cos() + x1 * ang.sin()], -1)
    for heads in (1, h):
        cos, sin = M.rope(pos, e, theta, heads)
        assert cos.shape == (b, t, heads, e)
        torch.testing.assert_close(M.apply_rope(x, cos, sin).double(), want, rtol=0, atol=1e-5)
    q, k = torch.randn(1, 1, 1, e), torch.randn(1, 1, 1, e)                                    # one token each
    at = lambda p: M.rope(torch.tensor([[p]]), e, theta)
    dot = lambda m, n: (M.apply_rope(q, *at(m)) * M.apply_rope(k, *at(n))).sum()
    torch.testing.assert_close(dot(5, 2), dot(13, 10), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(dot(5, 2), dot(5, 4), rtol=1e-3)


# ----------------------------------------------------------------------------- sweep
import sweep


def test_sweep_fit_on_synthetic_numbers():
    facts = [100, 1000, 10000]
    k, r2, slope = sweep.fit_params_per_fact(facts, [8 * f for f in facts])
    assert abs(k - 8) < 1e-9 and abs(r2 - 1) < 1e-9 and abs(slope - 1) < 1e-9
    k, r2, slope = sweep.fit_params_per_fact(facts, [30000, 31000, 29000])
    assert abs(slope) < 0.02 and r2 < 0          # flat: a line through the origin fits it worse than the mean
    noisy = [8 * f * (1 + e) for f, e in zip(facts, (0.3, -0.2, 0.05))]
    k, r2, _ = sweep.fit_params_per_fact(facts, noisy)
    assert abs(k - 8.38) < 0.01 and 0.99 < r2 < 1   # the largest point dominates a fit through the origin
    rows = [dict(arch='transformer', tool=False, n_facts=100, params=p, recall_trained=r)
            for p, r in [(1000, 0.5), (2000, 0.96), (4000, 1.0), (2000, 0.90)]]  # 2000: mean of two seeds 0.93
    assert sweep.smallest_reaching(rows) == {('transformer', False, 100): 4000}
    tool = [dict(arch='transformer', tool=True, n_facts=100, params=p, recall_trained=1.0, recall_held_out=h,
                 recall_unseen=u) for p, h, u in [(1000, 0.99, 0.90), (2000, 0.96, 0.97)]]
    assert sweep.smallest_reaching(tool) == {('transformer', True, 100): 2000}   # unseen counts too
    two = [dict(arch='transformer', tool=True, n_facts=100, params=1000, recall_trained=1.0, recall_held_out=h,
                recall_unseen=u) for h, u in [(0.99, 0.93), (0.93, 0.99)]]   # each split's mean over seeds: 0.96
    assert sweep.smallest_reaching(two) == {('transformer', True, 100): 1000}
    assert sweep.smallest_reaching([dict(two[0], recall_unseen=0.90), two[1]]) == {}   # unseen: 0.945
    exact = [dict(tool[1], recall_held_out=float(torch.tensor(380) / torch.tensor(400)))]   # float32: 0.94999999
    assert sweep.smallest_reaching(exact) == {('transformer', True, 100): 2000}   # 380 of 400 is 95%
    assert sweep.smallest_reaching([dict(exact[0], recall_held_out=379 / 400)]) == {}
    seeds = [dict(arch='transformer', tool=False, bits_per_fact=10.0, seed=s, n_facts=f, params=p, recall_trained=r)
             for s, f, p, r in [(0, 100, 1000, 0.96), (0, 100, 2000, 1.0), (0, 200, 2000, 0.96), (0, 200, 4000, 1.0),
                                (1, 100, 1000, 0.90), (1, 100, 2000, 0.99), (1, 200, 2000, 0.80), (1, 200, 4000, 0.97)]]
    fit = sweep.fit_lines(seeds)['transformer, no tool']   # the mean of two seeds: 2000 at 100 facts, 4000 at 200
    assert fit['params'] == [2000, 4000] and abs(fit['params_per_fact'] - 20) < 1e-9 and abs(fit['bits_per_param_of_fit'] - 0.5) < 1e-9
    assert {s: round(f['params_per_fact'], 9) for s, f in fit['by_seed'].items()} == {0: 10, 1: 20}
    # two recipes at one size, two seeds each: averaged as four seeds (0.94) neither would count; by recipe 4 heads do
    recipes = [dict(arch='transformer', tool=False, n_facts=100, params=1000, seed=s % 2, recall_trained=r)
               for s, r in enumerate([0.96, 0.97, 0.92, 0.91])]
    configs = [dict(train.DEFAULTS, seed=s % 2, n_head=4 if s < 2 else 2, out_dir=f'r{s}', threads=1 + s) for s in range(4)]
    sweep.mark_variants(recipes, configs)   # out_dir and threads differ too: bookkeeping, not the recipe
    assert [r['variant'] for r in recipes] == ['n_head=4', 'n_head=4', 'n_head=2', 'n_head=2']
    assert sweep.smallest_reaching(recipes) == {('transformer', False, 100): 1000}
    sweep.mark_variants(recipes[:2], configs[:2])
    assert [r['variant'] for r in recipes[:2]] == ['', '']   # seeds of one recipe
    union = [n for n, _ in sweep.runs([{'arch': ['transformer'], 'tool': [False, True]}, {'arch': ['mamba']}], {}, 'x')]
    assert union == ['archtransformer_toolFalse', 'archtransformer_toolTrue', 'archmamba']  # a list of grids: their union


def test_sweep_reference_reading_averages_each_seeds_smallest():
    """The reference's reading of seeds: each seed's smallest model at 95%, averaged over the seeds that have one
    (a seed with none is left out), fitted as a line through the extra point (0, 0) with an intercept."""
    a, b = sweep.fit_with_intercept([100, 200], [1500, 2500])   # with (0, 0): slope 12.5, intercept 83.3
    assert abs(a - 12.5) < 1e-9 and abs(b - 250 / 3) < 1e-9
    rows = [dict(arch='transformer', tool=False, bits_per_fact=10.0, seed=s, n_facts=f, params=p, recall_trained=r)
            for s, f, p, r in [(0, 100, 1000, 0.96), (0, 200, 2000, 0.96), (1, 100, 1000, 0.90), (1, 100, 2000, 0.99),
                               (1, 200, 2000, 0.80), (1, 200, 4000, 0.97), (2, 100, 1000, 0.95), (2, 200, 8000, 0.5)]]
    assert sweep.mean_of_seed_minima(sweep.smallest_by_seed(rows), rows, 'transformer', False) == dict(
        facts=[100, 200], mean_params=[4000 / 3, 3000], seeds_reaching=[3, 2], seeds_run=[3, 3])
    fit = sweep.fit_lines(rows)['transformer, no tool']
    assert fit['params'] == [2000, 4000]   # ours: the smallest whose recall, averaged over seeds, reaches 95%
    ref = fit['reference_rule']
    assert ref['facts'] == [100, 200] and ref['seeds_reaching'] == [3, 2] and ref['seeds_run'] == [3, 3]
    k = (100 * 4000 / 3 + 200 * 3000) / (100 ** 2 + 200 ** 2)
    assert abs(ref['params_per_fact'] - k) < 1e-9 and abs(ref['slope_with_intercept'] - 15) < 1e-9   # 0, 1333.3, 3000
    tool = [dict(arch='transformer', tool=True, bits_per_fact=10.0, seed=s, n_facts=f, params=p, recall_trained=1.0,
                 recall_held_out=0.99, recall_unseen=u) for s, f, p, u in
            [(0, 100, 1000, 0.96), (1, 100, 1000, 0.01), (0, 400, 1000, 0.97), (1, 400, 1000, 0.96), (0, 800, 2000, 0.99)]]
    fit = sweep.fit_lines(tool)['transformer, tool']   # on the seeds' mean 400 and 800 facts: one line, one reading
    ref = fit['reference_rule']
    assert fit['params'] == [1000, 2000] and ref['facts'] == [100, 400, 800] and ref['mean_params'] == [1000, 1000, 2000]
    assert ref['seeds_reaching'] == [1, 2, 1] and ref['seeds_run'] == [2, 2, 1]   # seed 1 was not run at 800 facts
    assert ref['trained_only'] == dict(facts=[100, 400, 800], mean_params=[1000, 1000, 2000], seeds_reaching=[2, 2, 1],
                                       seeds_run=[2, 2, 1])   # seed 1 at 100 facts: 1% unseen, 100% trained
    only = sweep.fit_lines(tool[:2])['transformer, tool']   # no size reaches 95% on the mean: the reading alone
    assert list(only) == ['reference_rule'] and only['reference_rule']['seeds_reaching'] == [1]


def test_sweep_skips_finished_runs_and_writes_the_csv(tmp_path, tiny_data):
    cfg = tmp_path / 'sweep_tiny.py'
    base = {k.split('=')[0][2:]: ast_value(k.split('=')[1]) for k in TINY}
    cfg.write_text(f"grid = dict(tool=[False, True])\nbase = {base!r}\nbase.update(max_iters=2, data_dir={tiny_data!r}, "
                   f"mix_qa=1.0, mix_qa_tool=0.0)\nout_root = {str(tmp_path / 'sw')!r}\n")
    argvs = dict(sweep.runs({'tool': [False, True]}, {}, 'x'))
    assert list(argvs) == ['toolFalse', 'toolTrue']
    assert {'--mix_qa=0.0', '--mix_qa_tool=1.0', '--tool=True'} <= set(argvs['toolTrue'])  # the tool axis sets the mix
    names = list(argvs)
    sweep.main([str(cfg), '--launcher=local'])
    rows = list(csv.DictReader(open(tmp_path / 'sw' / 'results.csv')))
    assert len(rows) == 2 and list(rows[0]) == sweep.COLUMNS
    assert float(rows[0]['bits_held_per_param']) < 1 and rows[1]['bits_held_per_param'] == ''  # no tool; tool: none
    typed = sweep.read_results(tmp_path / 'sw' / 'results.csv')   # what the probes' reading scripts read back
    assert typed[1]['tool'] is True and typed[0]['params'] == int(rows[0]['params']) and typed[1]['bits_held_per_param'] is None
    assert typed[0]['out_dir'] == rows[0]['out_dir'] and typed[0]['recall_trained'] == float(rows[0]['recall_trained'])
    for png in ('recall_vs_params.png', 'params_for_95.png', 'bits_per_param.png'):
        assert os.path.exists(tmp_path / 'sw' / png)
    mtimes = {n: os.path.getmtime(tmp_path / 'sw' / n / 'results.json') for n in names}
    sweep.main([str(cfg), '--launcher=local'])  # everything is done: nothing runs again
    assert mtimes == {n: os.path.getmtime(tmp_path / 'sw' / n / 'results.json') for n in names}
    cfg.write_text(cfg.read_text() + "base.update(learning_rate=0.5)\n")   # another recipe under the same names
    with pytest.raises(SystemExit, match=r"toolFalse finished with learning_rate=.* now asks 0.5"):
        sweep.main([str(cfg), '--plot_only=True'])
    cfg.write_text(cfg.read_text() + "base.update(learning_rate=%r, max_iters=3)\n" % train.DEFAULTS['learning_rate'])
    with pytest.raises(SystemExit, match=r"toolFalse finished with max_iters=2 but .* now asks 3"):   # longer: stale too
        sweep.main([str(cfg), '--plot_only=True'])
    assert mtimes == {n: os.path.getmtime(tmp_path / 'sw' / n / 'results.json') for n in names}


def ast_value(text):
    import ast
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


# ----------------------------------------------------------------------------- Mamba in model.py
def test_mamba_recurrent_generation_equals_full_forward():
    m = tiny_model('mamba')
    with torch.no_grad():
        m.head.weight.mul_(20)
    prompts = random_prompts(4, seed=1)
    got = M.generate(m, prompts, 16, {data.EOT})
    for p, g in zip(prompts, got):
        assert g == greedy_without_cache(m, p, 16, {data.EOT})
    assert len({tuple(g) for g in got}) > 1


def test_mamba_step_logits_match_forward():
    m = tiny_model('mamba')
    x = torch.randint(0, 256, (3, 20))
    with torch.no_grad():
        full = m(x)
        cache = m.new_cache(3, 20)
        stepped = torch.cat([m.step(x[:, i:i + 1], cache, torch.zeros(3, dtype=torch.long)) for i in range(20)], 1)
    torch.testing.assert_close(stepped, full, rtol=1e-4, atol=1e-4)  # fp32: scan vs recurrence order


def test_mamba_parallel_prefill_equals_the_recurrence_with_left_padding():
    """A prompt batch goes through the scan at once (padding gets dt = 0 and zero conv inputs); it must leave
    the logits and both states that feeding it one token at a time leaves, padding included."""
    m = tiny_model('mamba')
    g = torch.Generator().manual_seed(3)
    x = torch.randint(0, 256, (4, 9), generator=g)
    pad = torch.tensor([0, 3, 8, 1])                 # row 2 is a one-token prompt
    with torch.no_grad():
        fast, slow = m.new_cache(4, 12), m.new_cache(4, 12)
        got = m.step(x, fast, pad)                                                   # (b, t, v)
        want = torch.cat([m.step(x[:, i:i + 1], slow, pad) for i in range(9)], 1)
        nxt = torch.randint(0, 256, (4, 1), generator=g)
        after_fast, after_slow = m.step(nxt, fast, pad), m.step(nxt, slow, pad)       # decoding goes on alike
    real = torch.arange(9)[None] >= pad[:, None]
    torch.testing.assert_close(got[real], want[real], rtol=1e-4, atol=1e-4)
    for (c1, s1), (c2, s2) in zip(fast['layers'], slow['layers']):
        torch.testing.assert_close(c1, c2, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(s1, s2, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(after_fast, after_slow, rtol=1e-4, atol=1e-4)
    assert fast['slot'] == slow['slot'] == 10
    with torch.no_grad():   # a prompt shorter than the conv window
        fast, slow = m.new_cache(4, 4), m.new_cache(4, 4)
        m.step(x[:, :2], fast, pad.clamp(max=1))
        for i in range(2):
            m.step(x[:, i:i + 1], slow, pad.clamp(max=1))
    for (c1, s1), (c2, s2) in zip(fast['layers'], slow['layers']):
        torch.testing.assert_close(c1, c2, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(s1, s2, rtol=1e-4, atol=1e-5)


def test_mamba_trains_through_train_py(tmp_path, tiny_data):
    out = str(tmp_path / 'mamba')
    log = run_train(out, '--arch=mamba', '--max_iters=4', '--ckpt_interval=2', data_dir=tiny_data)
    assert 'selective scan backend: cpp' in log or 'selective scan backend: torch' in log   # cpp where it builds
    res = json.load(open(os.path.join(out, 'results.json')))
    assert res['arch'] == 'mamba' and res['params'] > 0


# ----------------------------------------------------------------------------- selective scan (ssm_triton.py)
import random
import shutil

import ssm_triton
from ssm_triton import selective_scan, selective_scan_ref

NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")
# Backends run in fp32 and are compared to the reference in fp64: max |error| <= TOL * max |reference|,
# per output and per gradient. Measured: the triton kernels (the fp32 recurrence) are off by ~2e-7..6e-7;
# the torch backend too, except when a chunk's cumulative log-decay S nears its bound of 60: exp(S_t)*exp(-S_s)
# then rounds S to ~60*6e-8, ~4e-6 relative, seen up to 1.5e-5 on a gradient summed with cancellation (D).
# 1e-4 leaves a margin of ~7 over that and is still far below what any wrong formula or index produces.
# The cpp backend runs the fp32 recurrence with its own exp2 (rel. error ~2e-7 per decay) and fuses softplus,
# D and z: measured up to ~2e-6 (on the shapes below, the worst where dt may be negative, without softplus),
# so the same TOL holds with a margin of ~50.
TOL = 1e-4


def make_inputs(b, d, l, n, groups=None, softplus=True, seed=0):
    """Random float64 inputs shaped as mamba_ssm expects; delta stays positive (a decaying state)."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)
    bc = (b, groups, n, l) if groups else (b, n, l)
    delta = r(b, d, l) - 1.0 if softplus else torch.rand(b, d, l, generator=g, dtype=torch.float64) * 0.5
    return dict(u=r(b, d, l), delta=delta, A=-torch.exp(0.5 * r(d, n)), B=r(*bc), C=r(*bc),
                D=r(d), z=r(b, d, l), delta_bias=0.3 * r(d))


def scan_and_grads(fn, inputs, dtype, softplus, **kw):
    """Output, last state and the gradients of a random projection of the output."""
    xs = {k: v.detach().to(dtype).requires_grad_() for k, v in inputs.items() if v is not None}
    out, last = fn(**xs, delta_softplus=softplus, return_last_state=True, **kw)
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    (out.double() * w).sum().backward()
    return out, last, {k: x.grad for k, x in xs.items()}


def assert_matches_ref(backend, b, d, l, n, groups, with_extras, softplus):
    inputs = make_inputs(b, d, l, n, groups, softplus)
    if not with_extras:
        inputs.update(D=None, z=None, delta_bias=None)
    ref = scan_and_grads(selective_scan_ref, inputs, torch.float64, softplus)
    got = scan_and_grads(selective_scan, inputs, torch.float32, softplus, backend=backend)
    assert ssm_triton.LAST_BACKEND == backend
    assert got[0].dtype == torch.float32 and got[0].shape == (b, d, l) and got[1].shape == (b, d, n)
    pairs = [("out", got[0], ref[0]), ("last_state", got[1], ref[1])]
    pairs += [(f"grad {k}", got[2][k], ref[2][k]) for k in ref[2]]
    for name, x, want in pairs:
        err = (x.double() - want).abs().max().item()
        scale = want.abs().max().item()
        assert err <= TOL * scale, f"{backend} {name}: max error {err:.2e} vs scale {scale:.2e}"


# (b, d, l, n, groups, D/z/delta_bias, softplus); chunks of 16 steps so that several chunks and a partial
# last one are exercised
CASES = [
    (2, 4, 40, 16, None, True, True),
    (2, 8, 64, 16, 2, True, True),
    (1, 4, 33, 16, None, False, False),
    (2, 6, 21, 5, 3, False, True),      # n and channels per group not powers of 2
    (1, 130, 20, 4, None, True, True),  # several channel blocks per group in the triton kernels
]


@pytest.mark.parametrize("save_mb", [0, 256], ids=["recompute", "saved"])  # the backward's two ways to its states
@pytest.mark.parametrize("b, d, l, n, groups, extras, softplus", CASES)
def test_scan_torch_backend_matches_ref(monkeypatch, b, d, l, n, groups, extras, softplus, save_mb):
    monkeypatch.setattr(ssm_triton, "TORCH_CHUNK", 16)
    monkeypatch.setattr(ssm_triton, "TORCH_SAVE_MB", save_mb)
    assert_matches_ref("torch", b, d, l, n, groups, extras, softplus)


def test_scan_torch_backend_backward_twice():
    # the first backward consumes (overwrites) the states the forward saved; a second one must recompute them
    xs = {k: v.float().requires_grad_() for k, v in make_inputs(2, 4, 40, 16).items()}
    y = selective_scan(**xs, delta_softplus=True, backend="torch")
    first = torch.autograd.grad(y.sum(), list(xs.values()), retain_graph=True)
    second = torch.autograd.grad(y.sum(), list(xs.values()))
    for a, b in zip(first, second):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("b, d, l, n, groups, extras, softplus", CASES)
def test_scan_triton_backend_matches_ref(monkeypatch, b, d, l, n, groups, extras, softplus):
    if not ssm_triton.HAS_TRITON:
        pytest.skip("triton is not importable")
    if not ssm_triton.TRITON_INTERPRET:
        pytest.skip("ssm_triton was imported before TRITON_INTERPRET=1 was set")
    monkeypatch.setattr(ssm_triton, "TRITON_CHUNK", 16)
    assert_matches_ref("triton", b, d, l, n, groups, extras, softplus)


@pytest.mark.parametrize("save_mb", [0, 256], ids=["recompute", "saved"])
def test_scan_torch_backend_long_sequence(monkeypatch, save_mb):
    monkeypatch.setattr(ssm_triton, "TORCH_SAVE_MB", save_mb)
    assert_matches_ref("torch", 2, 8, 2048, 16, 2, True, True)


@pytest.mark.parametrize("backend", ["torch", "cpp"])
def test_scan_strong_decay_and_large_deltas(monkeypatch, backend):
    # |delta * A| up to ~100 per step (torch: chunks shrink to single clamped steps; cpp: its exp2 clamps at
    # 2^-125), and softplus past torch's threshold of 20: still exact to fp32
    if backend == "cpp":
        need_cpp()
    monkeypatch.setattr(ssm_triton, "TORCH_CHUNK", 16)
    inputs = make_inputs(2, 4, 40, 16, None, softplus=True)
    inputs["delta"] = inputs["delta"] * 3 + 2
    inputs["delta"][0, 0, 5:9] = 25.0
    inputs["A"] = inputs["A"] * 20
    ref = scan_and_grads(selective_scan_ref, inputs, torch.float64, True)
    got = scan_and_grads(selective_scan, inputs, torch.float32, True, backend=backend)
    for x, want in [(got[0], ref[0]), (got[1], ref[1])] + [(got[2][k], ref[2][k]) for k in NAMES]:
        assert torch.isfinite(x).all()
        assert (x.double() - want).abs().max() <= TOL * want.abs().max()


# ---- the cpp backend (scan_cpu.cpp, compiled on first use): it must build where a compiler and ninja are
# found, so these tests fail rather than skip on a build error
def need_cpp():
    try:
        import ninja  # noqa: F401  (its binary need not be on PATH: ssm_triton adds it)
    except ImportError:
        if not shutil.which('ninja'):
            pytest.skip("no ninja: the cpp backend cannot be built here")
    if not shutil.which(os.environ.get('CXX', 'c++')):
        pytest.skip("no C++ compiler: the cpp backend cannot be built here")
    assert ssm_triton._cpp_ops() is not None, ssm_triton._CPP['error']


def random_case(seed):
    """A random shape (b, d, l, n, groups, D/z/delta_bias, softplus) and chunk: l often not a multiple of the
    chunk, chunks not multiples of 8 (the kernels' 8-step blocks then end in single steps), n in and beyond
    the specialized widths (n <= 32 and 64; n = 40 takes the run-time width)."""
    r = random.Random(seed)
    groups = r.choice([None, 1, 2, 3])
    d = (groups or 1) * r.randint(1, 5)
    case = (r.randint(1, 3), d, r.randint(1, 150), r.choice([1, 5, 8, 16, 17, 40]), groups,
            r.random() < 0.7, r.random() < 0.7)
    return case, r.choice([3, 12, 16, 64])


CPP_CASES = CASES + [
    (1, 4, 1, 16, None, True, True),      # l = 1
    (2, 4, 45, 40, 2, True, False),       # n = 40: the run-time vector count
    (1, 3, 30, 24, None, True, True),     # n = 24: three vectors
    (2, 64, 37, 16, 2, True, True),       # several channels per block in the backward's B/C partial sums
]


@pytest.mark.parametrize("b, d, l, n, groups, extras, softplus", CPP_CASES)
def test_scan_cpp_backend_matches_ref(monkeypatch, b, d, l, n, groups, extras, softplus):
    need_cpp()
    monkeypatch.setattr(ssm_triton, "CPP_CHUNK", 16)
    assert_matches_ref("cpp", b, d, l, n, groups, extras, softplus)


@pytest.mark.parametrize("seed", range(8))
def test_scan_cpp_backend_random_shapes_match_ref(monkeypatch, seed):
    need_cpp()
    case, chunk = random_case(seed)
    monkeypatch.setattr(ssm_triton, "CPP_CHUNK", chunk)
    assert_matches_ref("cpp", *case)


def test_scan_cpp_backend_long_sequence():
    # l = 2048 with the default chunk of 64, grouped B/C, n = 16: 32 chunks, the state carried through all
    need_cpp()
    assert_matches_ref("cpp", 2, 8, 2048, 16, 2, True, True)


def test_scan_cpp_backend_takes_output_gradients_of_any_strides():
    # the backward reads the output's gradient with its strides: the expanded ones of y.sum(), a permuted one
    need_cpp()
    inputs = make_inputs(2, 4, 37, 16, 2)
    grads = {"expanded": torch.ones(1, 1, 1).expand(2, 4, 37), "permuted": torch.randn(37, 4, 2).permute(2, 1, 0)}
    for name, g in grads.items():
        xs = [{k: v.to(dt).requires_grad_() for k, v in inputs.items()} for dt in (torch.float64, torch.float32)]
        want = torch.autograd.grad(selective_scan_ref(**xs[0], delta_softplus=True), list(xs[0].values()), g.double())
        got = torch.autograd.grad(selective_scan(**xs[1], delta_softplus=True, backend="cpp"), list(xs[1].values()), g)
        for k, x, w in zip(NAMES, got, want):
            assert (x.double() - w).abs().max() <= TOL * w.abs().max(), (name, k)


def test_scan_cpp_backend_is_deterministic_across_runs():
    # the grouped B/C gradients are summed per channel block, then over blocks: no races, no atomics, so
    # two runs give identical bits (with several threads and several blocks per group)
    need_cpp()
    inputs = make_inputs(2, 32, 100, 16, 2)
    runs = [scan_and_grads(selective_scan, inputs, torch.float32, True, backend="cpp") for _ in range(2)]
    assert torch.equal(runs[0][0], runs[1][0])
    assert all(torch.equal(runs[0][2][k], runs[1][2][k]) for k in NAMES)


def test_scan_cpp_backend_is_the_cpu_default_for_fp32(monkeypatch):
    need_cpp()
    monkeypatch.delenv("SSM_BACKEND", raising=False)
    xs = {k: v.float() for k, v in make_inputs(1, 4, 10, 16).items()}
    selective_scan(**xs, delta_softplus=True)
    assert ssm_triton.LAST_BACKEND == "cpp"
    selective_scan(**make_inputs(1, 4, 10, 16), delta_softplus=True)   # fp64: the torch backend computes in fp64
    assert ssm_triton.LAST_BACKEND == "torch"
    xs["u"] = xs["u"].bfloat16()
    out = selective_scan(**xs, delta_softplus=True, backend="cpp")
    want = selective_scan_ref(**xs, delta_softplus=True)
    assert out.dtype == torch.bfloat16 and torch.allclose(out.float(), want.float(), rtol=1e-2, atol=1e-2)
    monkeypatch.setenv("SSM_BACKEND", "cpp")
    selective_scan(**make_inputs(1, 4, 10, 16), delta_softplus=True)    # forced: fp64 computed in fp32
    assert ssm_triton.LAST_BACKEND == "cpp"


def test_scan_cpp_build_failure_falls_back_to_torch_with_one_line(monkeypatch, capsys):
    def broken(name, source):
        raise RuntimeError("Error building extension 'ssm_scan_cpu': [1/2] c++ -c scan_cpu.cpp\n"
                           "scan_cpu.cpp:1:1: error: boom\nninja: build stopped")
    monkeypatch.delenv("SSM_BACKEND", raising=False)
    monkeypatch.setattr(ssm_triton, "_CPP", {"ops": None, "error": None, "tried": False})
    monkeypatch.setattr(ssm_triton, "_build_cpp", broken)
    xs = {k: v.float() for k, v in make_inputs(1, 2, 4, 4).items()}
    selective_scan(**xs)
    selective_scan(**xs)
    assert ssm_triton.LAST_BACKEND == "torch"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "scan_cpu.cpp:1:1: error: boom" in err and "'torch' backend" in err
    with pytest.raises(RuntimeError, match="'cpp' forced but scan_cpu.cpp cannot be built: .*error: boom"):
        selective_scan(**xs, backend="cpp")
    assert "cpp" not in ssm_triton.available_backends()


def test_scan_importing_ssm_triton_compiles_nothing():
    code = "import ssm_triton; assert not ssm_triton._CPP['tried']"
    subprocess.run([sys.executable, "-c", code], cwd=HERE, check=True, timeout=120)


def test_scan_output_dtype_follows_u():
    inputs = make_inputs(1, 4, 10, 16)
    xs = {k: v.float() for k, v in inputs.items()}
    xs["u"] = xs["u"].bfloat16()
    out = selective_scan(**xs, delta_softplus=True, backend="torch")
    want = selective_scan_ref(**xs, delta_softplus=True)
    assert out.dtype == torch.bfloat16 and torch.allclose(out.float(), want.float(), rtol=1e-2, atol=1e-2)


def test_scan_unknown_backend_raises(monkeypatch):
    inputs = make_inputs(1, 2, 4, 4)
    with pytest.raises(ValueError, match="unknown SSM backend"):
        selective_scan(**inputs, backend="cuda_magic")
    monkeypatch.setenv("SSM_BACKEND", "nope")
    with pytest.raises(ValueError, match="unknown SSM backend"):
        selective_scan(**inputs)


def test_scan_unavailable_backends_raise(monkeypatch):
    inputs = make_inputs(1, 2, 4, 4)
    with pytest.raises(RuntimeError, match="mamba_ssm"):  # needs CUDA
        selective_scan(**inputs, backend="mamba_ssm")
    monkeypatch.setattr(ssm_triton, "TRITON_INTERPRET", False)
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
        selective_scan(**inputs, backend="triton")
    monkeypatch.setattr(ssm_triton, "HAS_TRITON", False)
    with pytest.raises(RuntimeError, match="not importable"):
        selective_scan(**inputs, backend="triton")


def test_scan_torch_chosen_without_triton(monkeypatch):
    monkeypatch.delenv("SSM_BACKEND", raising=False)
    monkeypatch.setattr(ssm_triton, "HAS_TRITON", False)
    monkeypatch.setattr(ssm_triton, "HAS_MAMBA_SSM", False)
    monkeypatch.setattr(ssm_triton, "_CPP", {"ops": None, "error": "not built", "tried": True})  # no cpp either
    assert "triton" not in ssm_triton.available_backends()
    selective_scan(**make_inputs(1, 2, 4, 4))
    assert ssm_triton.LAST_BACKEND == "torch"
    # the automatic choice for CUDA tensors, decided without touching a GPU
    assert ssm_triton._pick_backend(None, torch.device("cuda")) == "torch"
    monkeypatch.setattr(ssm_triton, "HAS_TRITON", True)
    assert ssm_triton._pick_backend(None, torch.device("cuda")) == "triton"
    assert ssm_triton._pick_backend(None, torch.device("cpu")) == "torch"
    monkeypatch.setenv("SSM_BACKEND", "torch")
    assert ssm_triton._pick_backend(None, torch.device("cuda")) == "torch"


def test_mixer_step_matches_forward():
    from model import MambaMixer
    torch.manual_seed(0)
    mixer = MambaMixer(d_model=16, d_state=8)
    x = torch.randn(2, 12, 16)                                      # (b, l, d)
    with torch.no_grad():
        want = mixer(x)                                             # (b, l, d)
        conv_state, ssm_state = mixer.init_state(2)
        ys = []
        for t in range(x.shape[1]):
            y, conv_state, ssm_state = mixer.step(x[:, t], conv_state, ssm_state)
            ys.append(y)
    got = torch.stack(ys, dim=1)                                    # (b, l, d)
    assert ssm_triton.LAST_BACKEND == ("cpp" if ssm_triton._cpp_ops() else "torch")   # the CPU default
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-5), (got - want).abs().max()


def test_mixer_trains():
    from model import MambaMixer
    torch.manual_seed(0)
    mixer = MambaMixer(d_model=16)
    mixer(torch.randn(2, 20, 16)).square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in mixer.parameters())


# ----------------------------------------------------------------------------- the CPU Transformer (transformer_cpu.cpp)
# Its loss and gradients against model.py's Transformer and F.cross_entropy run in float64, on random weights
# and rows of random lengths. Tolerance: 1e-5 of the loss, and for every parameter 1e-4 of its gradient's
# largest entry (float32 sums over ~100 terms in another order; measured ~2e-6).
def need_cpu_kernel():
    need_cpp()   # the same compiler and ninja
    assert M.cpu_kernel_available(), M.cpu_kernel_error()


def kernel_case(seed, d, h, hidden, n_layer, b=5, t=29, vocab=M.ModelConfig.vocab_size):
    torch.manual_seed(seed)
    model = M.build_model(M.ModelConfig(n_layer=n_layer, n_embd=d, n_head=h, mlp_hidden=hidden, init='fan_in'))
    with torch.no_grad():   # norms' weights away from 1, larger residual outputs: every path carries weight
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    lengths = torch.randint(1, t + 1, (b,))
    lengths[0], lengths[-1] = t, 1
    real = torch.arange(t)[None] < lengths[:, None]
    idx = torch.randint(0, vocab, (b, t)) * real              # padding: token 0 after each row's length
    tgt = torch.randint(0, vocab, (b, t))
    weight = (torch.rand(b, t) < 0.5) * torch.rand(b, t) * real
    weight[0, -1] = 1.0                                       # the last position of a full row counts
    return model, idx, lengths, tgt, weight.float()


def reference_loss(model, idx, tgt, weight, scale):
    at = weight > 0
    logits = model(idx, at=at).double()
    return (F.cross_entropy(logits, tgt[at], reduction='none') * weight[at].double()).sum() * scale


@pytest.mark.parametrize("d, h, hidden, n_layer", [(16, 2, 64, 2), (32, 2, 128, 1), (20, 2, 120, 2),
                                                   (24, 3, 56, 2), (64, 4, 256, 2), (8, 1, 12, 3),
                                                   (16, 4, 40, 1), (64, 2, 96, 1)])   # head dims 4-32
def test_cpu_kernel_matches_float64_reference(d, h, hidden, n_layer):
    need_cpu_kernel()
    model, idx, lengths, tgt, weight = kernel_case(d + n_layer, d, h, hidden, n_layer)
    scale = 1 / float(weight.sum())
    loss = model.cpu_loss(idx, lengths, tgt, weight, scale)   # fills .grad
    got = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.cpu_loss(idx, lengths, tgt, weight, scale)          # adds to it, as backward() does
    assert all(torch.equal(p.grad, 2 * got[n]) for n, p in model.named_parameters())
    ref_model = model.double()
    ref_model.zero_grad()
    ref = reference_loss(ref_model, idx, tgt, weight, scale)
    ref.backward()
    assert abs(loss.item() - ref.item()) <= 1e-5 * abs(ref.item())
    for n, p in ref_model.named_parameters():
        assert torch.isfinite(got[n]).all(), n
        assert (got[n].double() - p.grad).abs().max() <= 1e-4 * p.grad.abs().max(), n


def test_cpu_extensions_are_built_per_cpu():
    # -march=native builds run only on CPUs with their instruction set: the library's name carries the CPU's tag
    need_cpu_kernel()
    tag = ssm_triton._cpu_tag()
    assert len(tag) == 8 and int(tag, 16) >= 0 and tag == ssm_triton._cpu_tag()
    assert any(os.path.basename(p) == f"transformer_cpu_{tag}.so" for p in torch.ops.loaded_libraries)


def test_cpu_kernel_gives_the_same_floats_on_any_thread_count():
    need_cpu_kernel()
    model, idx, lengths, tgt, weight = kernel_case(0, 16, 2, 64, 2, b=11)
    threads, out = torch.get_num_threads(), []
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            model.zero_grad()
            loss = model.cpu_loss(idx, lengths, tgt, weight, 0.01)
            out.append([loss] + [p.grad.clone() for p in model.parameters()])
    finally:
        torch.set_num_threads(threads)
    for other in out[1:]:
        assert all(torch.equal(a, b) for a, b in zip(out[0], other))


def test_cpu_kernel_build_failure_is_reported_in_one_line(monkeypatch, capsys):
    def broken(name, source):
        raise RuntimeError(f"Error building extension '{name}': [1/2] c++ -c {source}\n"
                           f"{source}:1:1: error: boom\nninja: build stopped")
    monkeypatch.setattr(M, "_CPU_KERNEL", {"ops": None, "error": None, "tried": False})
    monkeypatch.setattr(ssm_triton, "_build_cpp", broken)
    assert not M.cpu_kernel_available() and not M.cpu_kernel_available()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "transformer_cpu.cpp:1:1: error: boom" in err and "torch ops" in err


@pytest.mark.parametrize("bad", ["length", "token", "target"])
def test_cpu_kernel_rejects_an_index_out_of_range(bad):
    need_cpu_kernel()
    model, idx, lengths, tgt, weight = kernel_case(0, 16, 2, 64, 1)
    if bad == "length":
        lengths[1] = idx.shape[1] + 1
    elif bad == "token":
        idx[0, 3] = model.config.vocab_size
    else:
        tgt[0, -1] = -1   # a position with a weight (kernel_case sets it)
    with pytest.raises(RuntimeError, match=f"{bad} out of range"):
        model.cpu_loss(idx, lengths, tgt, weight, 1.0)


# ----------------------------------------------------------------------------- CALM (calm.py)
import gc
import torch.nn as nn
import torch.nn.functional as F

import calm
import calm_experiment
from calm import CALM
from model import apply_rope, rope

ARCHS = ['transformer', 'mamba']


def tiny(arch='transformer', seed=0, **kw):
    torch.manual_seed(seed)
    cfg = {**dict(arch=arch, vocab_size=data.VOCAB_SIZE, n_layer=2, n_embd=32, n_head=4, d_state=8), **kw}
    return M.build_model(M.ModelConfig(**cfg)).eval()


class TupleBlock(nn.Module):
    """A block of 'another library': returns a tuple, mixes positions causally (running mean)."""

    def __init__(self, d):
        super().__init__()
        self.lin = nn.Linear(d, d)

    def forward(self, x):
        mean = x.cumsum(1) / torch.arange(1, x.shape[1] + 1)[:, None]
        return x + torch.tanh(self.lin(mean)), None


class Plain(nn.Module):
    """No .blocks, no pos/seg, no cache: usable through CALM(..., anchor_blocks=model.layers)."""

    def __init__(self, d, n=3):
        super().__init__()
        self.emb, self.out = nn.Embedding(data.VOCAB_SIZE, d), nn.Linear(d, data.VOCAB_SIZE)
        self.layers = nn.ModuleList(TupleBlock(d) for _ in range(n))

    def forward(self, idx):
        x = self.emb(idx)
        for layer in self.layers:
            x = layer(x)[0]
        return self.out(x)


def activate(c, scale=0.5, seed=1):
    """A trained-looking composition: nonzero output projections, peaky anchor logits."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for xa in c.xattn:
            xa.wo.weight.copy_(torch.randn(xa.wo.weight.shape, generator=g) * scale)
            xa.wq.weight.mul_(20)
        if hasattr(c.anchor, 'head'):
            c.anchor.head.weight.mul_(20)
    return c


def all_hooks(c):
    return sum(len(b._forward_hooks) for b in c.anchor_blocks + sum(c.augment_blocks, []))


# ----------------------------------------------------------------------------- construction
@pytest.mark.parametrize('arch', ARCHS)
def test_widths_and_connections_derived(arch):
    anchor, aug = tiny(arch, n_layer=8, n_embd=32), tiny(arch, n_layer=2, n_embd=48)
    c = CALM(anchor, aug, connect_every=4)
    assert c.connections == [(3, 0, 0), (7, 0, 1)]    # anchor layers 4 and 8 read augment layers 1 and 2
    assert [(xa.proj.in_features, xa.proj.out_features) for xa in c.xattn] == [(48, 32), (48, 32)]
    idx = torch.randint(0, 256, (3, 7))
    assert c(idx).shape == (3, 7, data.VOCAB_SIZE)
    # several augments, explicit connections
    c2 = CALM(tiny(arch), [tiny(arch, n_embd=48), tiny(arch, n_embd=16, n_layer=1)], connections=[[(0, 1)], [(1, 0), (0, 0)]])
    assert [(i, j, l, xa.proj.in_features) for (i, j, l), xa in zip(c2.connections, c2.xattn)] == \
           [(0, 0, 1, 48), (1, 1, 0, 16), (0, 1, 0, 16)]


def test_plain_list_of_blocks():
    torch.manual_seed(0)
    anchor, aug = Plain(24), Plain(40, n=5)
    c = activate(CALM(anchor, [aug], connect_every=2, anchor_blocks=list(anchor.layers), augment_blocks=[list(aug.layers)]))
    assert [(xa.proj.in_features, xa.proj.out_features) for xa in c.xattn] == [(40, 24)]
    idx = torch.randint(0, 256, (2, 9))
    with torch.no_grad():
        out, alone = c(idx), anchor(idx)
        assert out.shape == (2, 9, data.VOCAB_SIZE) and not torch.allclose(out, alone)
        idx2 = idx.clone()
        idx2[:, 6] = (idx2[:, 6] + 1) % 256
        torch.testing.assert_close(c(idx2)[:, :6], out[:, :6])


@pytest.mark.parametrize('arch', ARCHS)
def test_zero_init_composition_equals_the_anchor(arch):
    anchor = tiny(arch)
    c = CALM(anchor, [tiny(arch, seed=1, n_embd=48), tiny(arch, seed=2)], connect_every=1)
    idx = torch.randint(0, 256, (2, 12))
    pos = torch.tensor([list(range(7)) + list(range(5))] * 2)
    seg = torch.tensor([[0] * 7 + [1] * 5] * 2)
    with torch.no_grad():
        torch.testing.assert_close(c(idx), anchor(idx), rtol=0, atol=0)
        torch.testing.assert_close(c(idx, pos=pos, seg=seg), anchor(idx, pos=pos, seg=seg), rtol=0, atol=0)
    assert M.generate(c, [[1, 2, 3], [4]], 8, {data.EOT}) == M.generate(anchor, [[1, 2, 3], [4]], 8, {data.EOT})


# ----------------------------------------------------------------------------- masks
@pytest.mark.parametrize('arch', ARCHS)
def test_causal_a_future_token_changes_no_earlier_output(arch):
    c = activate(CALM(tiny(arch), [tiny(arch, seed=1)], connect_every=1))
    idx = torch.randint(0, 256, (2, 16))
    with torch.no_grad():
        base = c(idx)
        assert not torch.allclose(base, c.anchor(idx), atol=1e-3)  # the composition does something
        for u in (3, 10, 15):
            changed = idx.clone()
            changed[:, u] = (changed[:, u] + 7) % 256
            out = c(changed)
            torch.testing.assert_close(out[:, :u], base[:, :u], rtol=1e-5, atol=1e-5)
            assert not torch.allclose(out[:, u:], base[:, u:], atol=1e-4)


def test_packed_documents_do_not_read_each_others_augment_states():
    c = activate(CALM(tiny(), [tiny(seed=1)], connect_every=1))
    a, b = [5, 6, 7, 8, 9], [10, 11, 12]
    row = torch.tensor([a + b])
    pos, seg = torch.tensor([list(range(5)) + list(range(3))]), torch.tensor([[0] * 5 + [1] * 3])
    with torch.no_grad():
        packed = c(row, pos=pos, seg=seg)
        torch.testing.assert_close(packed[0, 5:], c(torch.tensor([b]))[0], rtol=1e-5, atol=1e-5)


def test_prompt_mode_reads_the_whole_prompt_and_nothing_after_it():
    c = activate(CALM(tiny(), [tiny(seed=1)], connect_every=1, prompt_end=data.ASSISTANT))
    idx = torch.tensor([[data.USER, 70, 71, 72, 73, data.ASSISTANT, 80, 81, 82, 83]])
    with torch.no_grad():
        base = c(idx)
        answer = idx.clone()
        answer[0, 7] = 90       # after the prompt: the augment never reads it, the anchor causally
        torch.testing.assert_close(c(answer)[:, :7], base[:, :7], rtol=1e-5, atol=1e-5)
        question = idx.clone()
        question[0, 4] = 90     # in the prompt: every position reads it, also earlier ones (non-causal)
        assert not torch.allclose(c(question)[:, :4], base[:, :4], atol=1e-4)
        # packed: the second document reads only its own prompt
        pos, seg = torch.tensor([list(range(10)) * 2]), torch.tensor([[0] * 10 + [1] * 10])
        packed = c(torch.cat([answer, idx], 1), pos=pos, seg=seg)
        torch.testing.assert_close(packed[:, 10:], base, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('arch', ARCHS)
def test_answer_mode_reads_only_each_answer_as_a_text_of_its_own(arch):
    """answer_from: the augment is called on the answers alone (one row each, from a fresh start), the
    positions up to <|assistant|> read nothing (their outputs are the anchor's), packing changes nothing,
    and cached generation equals cache-free greedy decoding."""
    anchor, aug = tiny(arch), tiny(arch, seed=1, n_embd=48)
    c = CALM(anchor, [aug], connect_every=1, answer_from=data.ASSISTANT, null_slot=True)
    seen = []
    aug.register_forward_pre_hook(lambda mod, args: seen.append(args[0].clone()))
    q1, a1, q2, a2 = [data.USER, 70, 71, 72], [80, 81, 82, 83, 84], [data.USER, 73, 74], [85, 86, 87]
    d1, d2 = q1 + [data.ASSISTANT] + a1, q2 + [data.ASSISTANT] + a2
    idx = torch.tensor([d1])
    with torch.no_grad():
        torch.testing.assert_close(c(idx), anchor(idx), rtol=0, atol=0)    # zero-initialized output
        activate(c)
        base = c(idx)
        assert seen[-1].tolist() == [a1]
        torch.testing.assert_close(base[:, :5], anchor(idx)[:, :5], rtol=0, atol=0)   # nothing to read yet
        assert not torch.allclose(base[:, 5:], anchor(idx)[:, 5:], atol=1e-4)
        pos = torch.tensor([list(range(len(d1))) + list(range(len(d2)))])
        seg = torch.tensor([[0] * len(d1) + [1] * len(d2)])
        packed = c(torch.tensor([d1 + d2]), pos=pos, seg=seg)
        assert [r[:len(a)] for r, a in zip(seen[-1].tolist(), (a1, a2))] == [a1, a2]   # two rows, right-padded
        torch.testing.assert_close(packed[:, :len(d1)], base, rtol=1e-5, atol=1e-5)
        if arch == 'transformer':   # a Mamba anchor's own state flows into the next packed document
            torch.testing.assert_close(packed[:, len(d1):], c(torch.tensor([d2])), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(c(torch.tensor([q1])), anchor(torch.tensor([q1])), rtol=0, atol=0)  # no answer
    g = torch.Generator().manual_seed(3)
    prompts = [[data.USER] + torch.randint(0, 256, (int(n),), generator=g).tolist() + [data.ASSISTANT]
               for n in torch.randint(2, 12, (4,), generator=g)] + [[data.USER, 70, data.ASSISTANT, 80, 81]]
    got = M.generate(c, prompts, 12, {data.EOT})
    for p, new in zip(prompts, got):
        assert new == greedy_without_cache(c, p, 12, {data.EOT})
    assert got != M.generate(anchor, prompts, 12, {data.EOT})     # the augment changes the decoding
    assert all_hooks(c) == 0
    with pytest.raises(ValueError, match='exclude each other'):
        CALM(tiny(arch), [tiny(arch, seed=1)], prompt_end=data.ASSISTANT, answer_from=data.ASSISTANT)


# ----------------------------------------------------------------------------- generation
@pytest.mark.parametrize('prompt_mode', [False, True])
@pytest.mark.parametrize('arch', ARCHS)
def test_cached_generation_equals_cache_free_greedy(arch, prompt_mode):
    c = activate(CALM(tiny(arch), [tiny(arch, seed=1, n_embd=48), tiny(arch, seed=2)], connect_every=1,
                      prompt_end=data.ASSISTANT if prompt_mode else None))
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(0, 256, (int(n),), generator=g).tolist() + [data.ASSISTANT]
               for n in torch.randint(2, 14, (5,), generator=g)]
    got = M.generate(c, prompts, 16, {data.EOT})
    for p, new in zip(prompts, got):
        assert new == greedy_without_cache(c, p, 16, {data.EOT})   # only the new tokens, equal
    assert len({tuple(x) for x in got}) > 1
    assert all_hooks(c) == 0


def test_experiment_stages_share_data_and_shapes_and_calm_hidden_is_the_papers():
    """`python calm_experiment.py`'s stage configs: the stages on P read the same data, the fine-tuned
    anchor has the anchor's shape (it loads its weights), and calm_hidden turns every option off."""
    cfgs = calm_experiment.stage_configs(dict(calm_experiment.EXPERIMENT, out='out/x'))
    on_P = ('augment', 'calm', 'calm_hidden', 'finetuned_anchor')
    for key in ('data_dir', 'n_people', 'held_out', 'n_unseen', 'bios_per_person', 'data_seed', 'seed'):
        assert len({cfgs[n][key] for n in on_P}) == 1, key
    assert cfgs['anchor']['data_dir'] != cfgs['calm']['data_dir'] and cfgs['anchor']['data_seed'] != cfgs['calm']['data_seed']
    for key in ('arch', 'n_layer', 'n_embd', 'n_head', 'mlp_hidden'):
        assert cfgs['anchor'][key] == cfgs['finetuned_anchor'][key], key
    options = [k for k in calm_experiment.EXPERIMENT if k.startswith('calm_') and k != 'calm_iters']
    assert options and not any(cfgs['calm_hidden'][k] for k in options)
    assert all(cfgs['calm'][k] == calm_experiment.EXPERIMENT[k] for k in options)
    assert cfgs['calm']['max_iters'] == cfgs['finetuned_anchor']['max_iters'] == calm_experiment.EXPERIMENT['calm_iters']


def test_logit_ensemble_decodes_the_product_of_experts():
    """The experiment's reference row: greedy decoding of log p_anchor + w log p_augment, batched with
    caches, equals the same argmax computed on the full sequences."""
    anchor, augment = tiny(), tiny(seed=1, n_embd=48)
    prompts = [list(range(5, 12)), list(range(40, 44))]
    ens = calm_experiment.LogitEnsemble(anchor, augment, 0.5)
    got = M.generate(ens, prompts, 8, set())
    idx = torch.tensor([prompts[0]])
    with torch.no_grad():   # the cache-free reference reads ens(idx): check it is the product of experts
        want = anchor(idx).log_softmax(-1) + 0.5 * augment(idx).log_softmax(-1)
        torch.testing.assert_close(ens(idx), want)
    for p, new in zip(prompts, got):
        assert new == greedy_without_cache(ens, p, 8, set())
    assert got != M.generate(anchor, prompts, 8, set())   # the augment changes the decoding


def test_position_bias_generation_and_effect():
    """The optional distance penalty: cached generation still equals cache-free greedy decoding, and
    the penalty changes what the cross-attention reads."""
    c = activate(CALM(tiny(), [tiny(seed=1, n_embd=48)], connect_every=1, position_bias=True))
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(0, 256, (int(n),), generator=g).tolist() + [data.ASSISTANT]
               for n in torch.randint(2, 14, (4,), generator=g)]
    for p, new in zip(prompts, M.generate(c, prompts, 12, {data.EOT})):
        assert new == greedy_without_cache(c, p, 12, {data.EOT})
    idx = torch.randint(0, 256, (2, 16), generator=g)
    with torch.no_grad():
        base = c(idx)
        for xa in c.xattn:
            xa.slope.mul_(10)
        assert not torch.allclose(c(idx), base, atol=1e-4)
    assert sum(k.endswith('.slope') for k in c.state_dict()) == len(c.xattn)   # trained and checkpointed


@pytest.mark.parametrize('arch', ARCHS)
def test_read_output_connects_the_augments_next_token_distribution(arch):
    """read_output: the augment side is softmax(augment logits), so the augment's output head (which a
    block connection never sees) changes the composition; masks, zero init and caches hold as for blocks."""
    anchor, aug = tiny(arch), tiny(arch, seed=1, n_embd=48)
    c = CALM(anchor, [aug], connect_every=1, read_output=True)
    assert [c_[1:] for c_ in c.connections] == [(0, calm.OUTPUT), (0, calm.OUTPUT)]
    assert {xa.proj.in_features for xa in c.xattn} == {data.VOCAB_SIZE}
    idx = torch.randint(0, 256, (2, 11))
    with torch.no_grad():
        torch.testing.assert_close(c(idx), anchor(idx), rtol=0, atol=0)    # zero-initialized output
        activate(c)
        out = c(idx)
        idx2 = idx.clone()
        idx2[:, 7] = (idx2[:, 7] + 1) % 256
        torch.testing.assert_close(c(idx2)[:, :7], out[:, :7])              # causal
        aug.head.weight.mul_(3)
        assert not torch.allclose(c(idx), out, atol=1e-4)                  # it reads the output head
    g = torch.Generator().manual_seed(2)
    prompts = [torch.randint(0, 256, (int(n),), generator=g).tolist() for n in torch.randint(2, 12, (4,), generator=g)]
    for p, new in zip(prompts, M.generate(c, prompts, 12, {data.EOT})):
        assert new == greedy_without_cache(c, p, 12, {data.EOT})
    assert all_hooks(c) == 0


def test_null_slot_is_a_zero_value_the_softmax_may_choose():
    """null_slot: each query's softmax runs over [q . null_k, its real scores], the null slot's value is
    zero; checked against that formula written out, with the distance penalty on. Cached generation
    still equals cache-free greedy decoding."""
    torch.manual_seed(0)
    xa = calm.CrossAttention(16, 24, 2, position_bias=True, null_slot=True)
    with torch.no_grad():
        xa.wo.weight.normal_()
        xa.null_k.normal_()
    b, t = 2, 6
    x, m = torch.randn(b, t, 16), torch.randn(b, t, 24)
    pos = torch.arange(t).expand(b, t)
    mask = torch.ones(t, t, dtype=torch.bool).tril()[None, None].expand(b, 1, t, t)
    k, v = xa.memory(m, pos)                                                   # (b, h, t, e)
    q = apply_rope(xa.wq(xa.norm_x(x)).view(b, t, 2, 8), *rope(pos, 8, xa.theta)).transpose(1, 2)
    scores = q @ k.transpose(-1, -2) / 8 ** 0.5 - xa.slope[:, None, None] * (pos[:, None, :, None] - pos[:, None, None, :]).abs()
    scores = scores.masked_fill(~mask, float('-inf'))
    null = (q * xa.null_k[None, :, None]).sum(-1, keepdim=True) / 8 ** 0.5    # (b, h, t, 1)
    w = torch.cat([null, scores], -1).softmax(-1)[..., 1:]                    # the null slot's value is 0
    want = xa.wo((w @ v).transpose(1, 2).reshape(b, t, 16))
    torch.testing.assert_close(xa(x, k, v, pos, mask, pos), want, rtol=1e-5, atol=1e-5)
    c = activate(CALM(tiny(), [tiny(seed=1, n_embd=48)], connect_every=1, position_bias=True, null_slot=True))
    prompts = [list(range(3, 3 + n)) for n in (2, 7, 11)]
    for p, new in zip(prompts, M.generate(c, prompts, 10, {data.EOT})):
        assert new == greedy_without_cache(c, p, 10, {data.EOT})


def test_position_keys_read_where_the_anchor_decides():
    """position_keys: the keys are a learned vector per head rotated to the slot's position, the same for
    any augment state, so the read is a weighted sum of values whose weights come from the anchor's
    queries and positions only (linear in the values). With the options configs/calm.py uses, cached
    generation still equals cache-free greedy decoding."""
    torch.manual_seed(0)
    xa = calm.CrossAttention(16, 24, 2, position_bias=True, null_slot=True, position_keys=True)
    with torch.no_grad():
        xa.wo.weight.normal_()
    b, t = 2, 6
    x, m1, m2 = torch.randn(b, t, 16), torch.randn(b, t, 24), torch.randn(b, t, 24)
    pos = torch.arange(t).expand(b, t)
    mask = torch.ones(t, t, dtype=torch.bool).tril()[None, None].expand(b, 1, t, t)
    (k1, v1), (k2, v2) = xa.memory(m1, pos), xa.memory(m2, pos)
    assert torch.equal(k1, k2) and not torch.allclose(v1, v2)
    assert k1[:, :, 0].sub(k1[:, :, 3]).abs().max() > 1e-3                  # but they carry position
    read = lambda v: xa(x, k1, v, pos, mask, pos)
    torch.testing.assert_close(read(v1 + 2 * v2), read(v1) + 2 * read(v2), rtol=1e-4, atol=1e-5)
    assert xa.wkv.out_features == 16 and 'pos_k' in xa.state_dict()
    c = activate(CALM(tiny(), [tiny(seed=1, n_embd=48)], connect_every=1, position_bias=True, null_slot=True,
                      read_output=True, position_keys=True))
    prompts = [list(range(3, 3 + n)) for n in (2, 7, 11)]
    for p, new in zip(prompts, M.generate(c, prompts, 10, {data.EOT})):
        assert new == greedy_without_cache(c, p, 10, {data.EOT})


def test_gate_scales_each_read_by_a_sigmoid_of_the_anchor_state():
    """gate: the cross-attention's output is the ungated output times sigmoid(w . norm(x) + b), per token;
    zero-initialized, so an untrained gate halves a read (and the zero output projection keeps the
    untrained composition equal to the anchor). Cached generation still equals cache-free decoding."""
    torch.manual_seed(0)
    plain = calm.CrossAttention(16, 24, 2, null_slot=True, position_keys=True)
    gated = calm.CrossAttention(16, 24, 2, null_slot=True, position_keys=True, gate=True)
    missing, unexpected = gated.load_state_dict(plain.state_dict(), strict=False)
    assert set(missing) == {'gate.weight', 'gate.bias'} and not unexpected
    with torch.no_grad():
        plain.wo.weight.normal_()
        gated.wo.weight.copy_(plain.wo.weight)
        gated.gate.weight.normal_()
    b, t = 2, 5
    x, m = torch.randn(b, t, 16), torch.randn(b, t, 24)
    pos = torch.arange(t).expand(b, t)
    mask = torch.ones(t, t, dtype=torch.bool).tril()[None, None].expand(b, 1, t, t)
    k, v = plain.memory(m, pos)
    want = plain(x, k, v, pos, mask, pos) * torch.sigmoid(gated.gate(gated.norm_x(x)))
    torch.testing.assert_close(gated(x, k, v, pos, mask, pos), want)
    c = activate(CALM(tiny(), [tiny(seed=1, n_embd=48)], connect_every=1, read_output=True, position_keys=True,
                      null_slot=True, position_bias=True, gate=True))
    assert all(xa.gate.bias.item() == 0 for xa in c.xattn)
    prompts = [list(range(3, 3 + n)) for n in (2, 7, 11)]
    for p, new in zip(prompts, M.generate(c, prompts, 10, {data.EOT})):
        assert new == greedy_without_cache(c, p, 10, {data.EOT})


def test_gate_reads_sees_the_read_as_well_as_the_anchor_state():
    """gate_reads: the gate is sigmoid(w . [norm(x), read] + b), read the attention's output before wo; so the
    same anchor state gates two different memories differently. Zero-initialized, cached generation equal
    to cache-free decoding, and refused without a gate."""
    torch.manual_seed(0)
    kw = dict(null_slot=True, position_keys=True)
    plain, probe = calm.CrossAttention(16, 24, 2, **kw), calm.CrossAttention(16, 24, 2, **kw)
    gated = calm.CrossAttention(16, 24, 2, gate=True, gate_reads=True, **kw)
    gated.load_state_dict(plain.state_dict(), strict=False)
    probe.load_state_dict(plain.state_dict())
    with torch.no_grad():
        plain.wo.weight.normal_()
        gated.wo.weight.copy_(plain.wo.weight)
        probe.wo.weight.copy_(torch.eye(16))          # probe returns the read itself
        gated.gate.weight.normal_()
    assert gated.gate.weight.shape == (1, 32)
    b, t = 2, 5
    x = torch.randn(b, t, 16)
    pos = torch.arange(t).expand(b, t)
    mask = torch.ones(t, t, dtype=torch.bool).tril()[None, None].expand(b, 1, t, t)
    scales = []
    for m in (torch.randn(b, t, 24), torch.randn(b, t, 24)):
        k, v = plain.memory(m, pos)
        scale = torch.sigmoid(gated.gate(torch.cat([gated.norm_x(x), probe(x, k, v, pos, mask, pos)], -1)))
        torch.testing.assert_close(gated(x, k, v, pos, mask, pos), plain(x, k, v, pos, mask, pos) * scale)
        scales.append(scale)
    assert not torch.allclose(*scales)
    with pytest.raises(ValueError, match='gate_reads .* needs gate'):
        calm.CrossAttention(16, 24, 2, gate_reads=True)
    c = activate(CALM(tiny(), [tiny(seed=1, n_embd=48)], connect_every=1, read_output=True, position_keys=True,
                      null_slot=True, gate=True, gate_reads=True, answer_from=data.ASSISTANT))
    with torch.no_grad():
        for xa in c.xattn:
            xa.gate.weight.normal_()
    assert all(xa.gate.weight.abs().sum() == 0 for xa in CALM(tiny(), [tiny(seed=1)], gate=True, gate_reads=True).xattn)
    prompts = [data.prompt_ids(q) for q in ('Where was Ada born?', 'Who?')]
    for p, new in zip(prompts, M.generate(c, prompts, 10, {data.EOT})):
        assert new == greedy_without_cache(c, p, 10, {data.EOT})


# ----------------------------------------------------------------------------- state, hooks, memory
def test_state_dict_holds_only_the_composition():
    c = CALM(tiny(), [tiny(seed=1, n_embd=48)], connect_every=1)
    sd = c.state_dict()
    assert set(sd) == {f'{k}.{n}' for k in range(2) for n in
                       ('norm_x.weight', 'norm_m.weight', 'proj.weight', 'wq.weight', 'wkv.weight', 'wo.weight')}
    assert sum(t.numel() for t in sd.values()) == c.num_params() == sum(p.numel() for p in c.parameters() if p.requires_grad)
    other = CALM(tiny(), [tiny(seed=1, n_embd=48)], connect_every=1)
    other.load_state_dict({k: torch.randn_like(v) for k, v in sd.items()})
    c.load_state_dict(other.state_dict())
    for k, v in c.state_dict().items():
        assert torch.equal(v, other.state_dict()[k])


def live_tensors():
    gc.collect()
    return sum(1 for o in gc.get_objects() if issubclass(type(o), torch.Tensor))


def train_steps(c, opt, n):
    for _ in range(n):
        idx = torch.randint(0, 256, (2, 32))
        loss = F.cross_entropy(c(idx)[:, :-1].reshape(-1, data.VOCAB_SIZE), idx[:, 1:].reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)


def weights_hash(m):
    return hashlib.sha256(b''.join(t.numpy().tobytes() for t in m.state_dict().values())).hexdigest()


@pytest.mark.parametrize('arch', ARCHS)
def test_training_steps_leave_the_frozen_models_unchanged(arch):
    c = CALM(tiny(arch), [tiny(arch, seed=1)], connect_every=1)
    frozen = [weights_hash(m) for m in (c.anchor, *c.augments)]
    composition = weights_hash(c)
    opt = train.make_optimizer(c.train(), {**train.DEFAULTS, 'learning_rate': 1e-2}, torch.device('cpu'))
    train_steps(c, opt, 5)
    assert [weights_hash(m) for m in (c.anchor, *c.augments)] == frozen and weights_hash(c) != composition
    assert not c.anchor.training and not c.augments[0].training


def test_no_hook_or_hidden_state_outlives_a_call():
    c = CALM(tiny(), [tiny(seed=1)], connect_every=1)
    opt = torch.optim.AdamW([p for p in c.parameters() if p.requires_grad], lr=1e-3)
    train_steps(c, opt, 3)
    before = live_tensors()
    train_steps(c, opt, 40)
    assert live_tensors() == before and all_hooks(c) == 0
    with pytest.raises(IndexError):
        c(torch.tensor([[data.VOCAB_SIZE + 5]]))    # an error inside the call still removes the hooks
    assert all_hooks(c) == 0



# ----------------------------------------------------------------------------- training through train.py

def test_train_composes_frozen_checkpoints_and_saves_only_the_composition(tmp_path):
    tiny_cfg = ['--n_layer=1', '--n_embd=32', '--n_head=2', '--block_size=256', '--batch_size=4', '--eval_max=8',
                '--log_interval=1', '--warmup_iters=2', '--n_people=20', '--threads=1', '--max_iters=3']
    d = str(tmp_path)
    run = lambda config, *extra: train.train(train.get_config([os.path.join(HERE, config), *tiny_cfg, *extra]))
    run('configs/calm_augment.py', f'--out_dir={d}/aug', f'--data_dir={d}/P')
    run('configs/calm_anchor.py', f'--out_dir={d}/anc', f'--data_dir={d}/Q')
    frozen = {p: file_hash(p) for p in sample.list_checkpoints(f'{d}/aug') + sample.list_checkpoints(f'{d}/anc')}
    anchor = sample.load(f'{d}/anc')[0]
    res = run('configs/calm.py', f'--out_dir={d}/calm', f'--data_dir={d}/P', f'--anchor_dir={d}/anc',
              f'--augment_dirs={d}/aug', '--learning_rate=0.03', '--connect_every=1')
    assert {p: file_hash(p) for p in frozen} == frozen    # the frozen runs' checkpoints are untouched
    path, ckpt = sample.load_checkpoint(f'{d}/calm')
    assert ckpt['step'] == 3 and set(ckpt['model']) == {f'0.{n}' for n in ('norm_x.weight', 'norm_m.weight', 'proj.weight',
                                                                          'wq.weight', 'wkv.weight', 'wo.weight', 'slope', 'null_k', 'pos_k',
                                                                          'gate.weight', 'gate.bias')}
    assert ckpt['model']['0.proj.weight'].shape == (32, data.VOCAB_SIZE)   # configs/calm.py reads the augment's output
    assert res['params'] == sum(t.numel() for t in ckpt['model'].values())
    assert ckpt['model']['0.wo.weight'].abs().sum() > 0    # it trained
    n_opt = sum(len(g['params']) for g in ckpt['optimizer']['param_groups'])
    assert n_opt == len(ckpt['model'])                      # the optimizer holds only the composition
    c = sample.load(f'{d}/calm')[0]                         # and sample.py loads it: frozen weights as trained
    for (k, v), (k2, v2) in zip(anchor.state_dict().items(), c.anchor.state_dict().items()):
        assert k == k2 and torch.equal(v, v2), k
    assert all(not p.requires_grad for p in c.anchor.parameters())
    assert len(sample.answer(c, ['Where was Ada Quinn born?'], max_new_tokens=8)) == 1
    # resuming the composition with another anchor is refused
    with pytest.raises(SystemExit, match="anchor_dir"):
        run('configs/calm.py', f'--out_dir={d}/calm', f'--data_dir={d}/P', f'--anchor_dir={d}/aug',
            f'--augment_dirs={d}/aug', '--learning_rate=0.03', '--connect_every=1', '--max_iters=4')
    # the fine-tuned baseline starts from the anchor's weights
    ft = train.get_config([os.path.join(HERE, 'configs/calm_finetune.py'), *tiny_cfg, f'--init_from={d}/anc'])
    m, _ = sample.build(ft)
    for k, v in anchor.state_dict().items():
        assert torch.equal(v, m.state_dict()[k]), k


# ----------------------------------------------------------------------------- sample.py
class Scripted(torch.nn.Module):
    """A stand-in model that writes a fixed SQL query, then, once the tool's result is in its context,
    the answer 'It is <result>'. It tests the answering loop itself: the SQL really runs through db.run_sql
    and its result is fed back."""

    def __init__(self, sql):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.sql = [data.SQL] + data.encode(sql) + [data.END_SQL]

    def new_cache(self, b, s):
        return {'seqs': [[] for _ in range(b)]}

    def step(self, idx, cache, pad):
        logits = torch.full((idx.shape[0], idx.shape[1], data.VOCAB_SIZE), -1e9)
        for r in range(idx.shape[0]):
            seq = cache['seqs'][r]
            seq += [t for t in idx[r].tolist() if t != 0]
            if data.END_RESULT in seq:
                res = seq[seq.index(data.RESULT) + 1:seq.index(data.END_RESULT)]
                script = data.encode('It is ') + res + [data.EOT]
                done = len(seq) - seq.index(data.END_RESULT) - 1
            else:
                script, done = self.sql, len(seq) - seq.index(data.ASSISTANT) - 1
            logits[r, -1, script[min(done, len(script) - 1)]] = 0
        return logits


def test_answer_loop_runs_the_models_sql_and_feeds_the_result_back(data_dir):
    p = data.read_jsonl(os.path.join(data_dir, 'people.jsonl'))[3]
    path = os.path.join(data_dir, db.DB_FILE)
    m = Scripted(data.sql_for('occupation', p['name']))
    a = sample.answer(m, ['What is the occupation of X?', 'And again?'], tool=True, db_path=path, batch_size=1)
    assert a[0]['sql'] == data.sql_for('occupation', p['name'])
    assert a[0]['result'] == p['occupation'] and a[0]['answer'] == f"It is {p['occupation']}"
    bad = sample.answer(Scripted("DROP TABLE people"), ['Q?'], tool=True, db_path=path)[0]
    assert bad['result'].startswith('error:') and bad['answer'] == f"It is {bad['result']}"


def test_sample_cli_answers_with_a_trained_checkpoint_and_rejects_bad_ones(tmp_path, tiny_data, capsys):
    out = str(tmp_path / 's')
    run_train(out, '--max_iters=2', '--ckpt_interval=2', data_dir=tiny_data)
    sample.main([f'--out_dir={out}', '--tool', '--question=Where was Ada Quinn born?'])
    printed = capsys.readouterr().out
    assert 'answering through SQL' in printed and 'answer:' in printed
    with pytest.raises(SystemExit, match='not found'):
        sample.main([f'--out_dir={tmp_path / "nowhere"}'])
    path = sample.list_checkpoints(out)[0]
    ckpt = torch.load(path, weights_only=True)
    ckpt['tokenizer'] = 'another vocabulary'
    torch.save(ckpt, path)
    for other in sample.list_checkpoints(out)[1:]:
        os.remove(other)
    with pytest.raises(SystemExit, match='another vocabulary'):
        sample.main([f'--out_dir={out}'])


# ----------------------------------------------------------------------------- on a GPU (skipped without CUDA)
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (CI is CPU-only)")


@cuda
@pytest.mark.parametrize('arch', ['transformer', 'mamba'])
def test_cuda_training_steps_under_bf16_autocast(tmp_path, tiny_data, arch):
    """What a cluster user runs: train.py on the GPU, dtype 'auto' = bf16 autocast, each architecture (Mamba
    through the fastest scan there: mamba_ssm's kernel or our compiled Triton one)."""
    cfg = train.get_config([os.path.join(HERE, 'configs/tool.py'), *TINY, f'--arch={arch}', '--device=cuda',
                            '--max_iters=20', f'--out_dir={tmp_path / arch}', f'--data_dir={tiny_data}'])
    res = train.train(cfg)
    losses = [json.loads(l)['loss'] for l in open(tmp_path / arch / 'metrics.jsonl') if '"loss"' in l]
    assert len(losses) == 20 and all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert res['steps'] == 20
    if arch == 'mamba':
        assert ssm_triton.LAST_BACKEND in ('mamba_ssm', 'triton')


@cuda
@pytest.mark.parametrize('arch', ['transformer', 'mamba'])
def test_cuda_cached_generation_equals_recomputation(arch):
    m = tiny_model(arch).cuda()
    stop = {data.EOT}
    prompts = random_prompts(4, seed=1)
    for p, g in zip(prompts, M.generate(m, prompts, 12, stop)):
        assert g == greedy_without_cache(m, p, 12, stop)


# ----------------------------------------------------------------------------- bench.py
import bench


def test_bench_step_breakdown_sorts_the_time_by_kind():
    torch.manual_seed(0)
    x, w, q = torch.randn(512, 256), torch.randn(256, 256), torch.randn(8, 2, 128, 16)
    matmuls = bench.step_breakdown(lambda i: x @ w @ w, steps=3)
    attention = bench.step_breakdown(lambda i: F.scaled_dot_product_attention(q, q, q, is_causal=True), steps=3)
    elementwise = bench.step_breakdown(lambda i: (x * 2).exp().sum(), steps=3)
    assert matmuls['matmul'] > 0.5 and matmuls['attention'] == 0
    assert attention['attention'] > 0.5 and attention['matmul'] == 0
    assert elementwise['rest'] == 1
    for b in (matmuls, attention, elementwise):
        assert abs(b['matmul'] + b['attention'] + b['rest'] - 1) < 1e-9


def test_bench_combined_rate_counts_the_slowest_process_time_and_takes_the_median_round():
    # two processes started together: all their work over the slower one's time, not the sum of their rates
    assert bench.combined_rate([[(10.0, 2.0), (10.0, 1.0)]]) == 10.0
    rounds = [[(6.0, 1.0), (6.0, 1.0)], [(6.0, 3.0), (6.0, 2.0)], [(6.0, 1.0), (6.0, 2.0)]]
    assert bench.combined_rate(rounds) == 6.0   # rounds give 12, 4 and 6
