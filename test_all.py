"""
All tests: python -m pytest test_all.py   (about a minute or two on 2 CPU cores)

Sections: data + tokenizer, the SQL tool.
"""
import hashlib
import json
import os
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


def test_db_cli_reports_missing_files(tmp_path):
    with pytest.raises(SystemExit, match='not found'):
        db.create(str(tmp_path))
    with pytest.raises(SystemExit, match='not found'):
        db.main(['query', 'SELECT 1', '--data_dir', str(tmp_path)])
