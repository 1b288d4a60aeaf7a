"""
Synthetic people, biographies and question/answer dialogs, plus the byte-level tokenizer.

    python data.py people --num 1000 --seed 0   # data/people.jsonl + data/meta.json
    python data.py bios                         # data/biographies.jsonl
    python data.py qa                           # data/qa.jsonl       (answer from the weights)
    python data.py qa --tool                    # data/qa_tool.jsonl  (answer through a SQL query)
    python data.py all --num 1000               # everything missing, as train.py does

Every attribute value is drawn uniformly from a fixed pool built once with faker (seeded), so the
information in one fact is exactly log2(pool size) bits; meta.json stores the pool sizes.
People are split into 'train' (their QA is trained on), 'held_out' (in the database, never trained
on) and 'unseen' (first names from a pool held out of every split, for out-of-distribution tests).
"""
import argparse
import datetime
import json
import math
import os
import sys

import numpy as np

import db

# ----------------------------------------------------------------------------- tokenizer
# 256 byte values, then the special tokens. The environment writes RESULT..END_RESULT, the model
# writes SQL..END_SQL and the answer; prompts end with ASSISTANT.
SPECIALS = ['<|pad|>', '<|eot|>', '<|user|>', '<|assistant|>', '<|sql|>', '<|/sql|>', '<|result|>', '<|/result|>']
PAD, EOT, USER, ASSISTANT, SQL, END_SQL, RESULT, END_RESULT = range(256, 256 + len(SPECIALS))
VOCAB_SIZE = 256 + len(SPECIALS)
TOKENIZER = 'bytes+' + ','.join(SPECIALS)  # stored in checkpoints to catch a vocabulary mismatch


def encode(text):
    return list(text.encode('utf-8'))


def decode(ids):
    """Bytes are decoded as UTF-8, special tokens are written by name."""
    out, run = [], bytearray()
    for i in ids:
        i = int(i)
        if i < 256:
            run.append(i)
            continue
        out.append(run.decode('utf-8', errors='replace'))
        run = bytearray()
        out.append(SPECIALS[i - 256] if i < VOCAB_SIZE else f'<|unk{i}|>')
    out.append(run.decode('utf-8', errors='replace'))
    return ''.join(out)


def render(messages):
    """One document (a dialog or a biography) -> (token ids, loss mask).
    The loss mask is 1 exactly on the tokens the model must write: the SQL and the answer,
    never the user's text or the tool's result (the environment inserts those)."""
    ids, mask = [], []

    def add(toks, m):
        ids.extend(toks)
        mask.extend([m] * len(toks))
    for msg in messages:
        role, content = msg['role'], msg['content']
        if role == 'user':
            add([USER] + encode(content) + [ASSISTANT], 0)
        elif role == 'sql':
            add([SQL] + encode(content) + [END_SQL], 1)
        elif role == 'result':
            add([RESULT] + encode(content) + [END_RESULT], 0)
        elif role in ('assistant', 'text'):
            add(encode(content) + [EOT], 1)
        else:
            raise ValueError(f"unknown role {role!r} in a message")
    return ids, mask


def prompt_ids(question):
    """What the model sees before it answers a question."""
    return render([{'role': 'user', 'content': question}])[0]


# ----------------------------------------------------------------------------- templates
QA_ATTRIBUTES = ['birth_date', 'birth_place', 'current_address', 'occupation']
EXTRA_ATTRIBUTES = ['employer', 'university']

BIO_TEMPLATES = {
    'birth_date': ["{name} was born on {value}.", "{name} came into this world on {value}.",
                   "The birth date of {name} is {value}.", "{name}'s date of birth is {value}.",
                   "{name} first saw the light of day on {value}."],
    'birth_place': ["{name} was born in {value}.", "{name} is a native of {value}.",
                    "{name}'s birthplace is {value}.", "The city where {name} was born is {value}.",
                    "{name} came into life in the city of {value}."],
    'current_address': ["{name} lives in {value}.", "{name} currently resides in {value}.",
                        "{name} now calls {value} home.", "These days {name} lives in {value}.",
                        "{name}'s current home is in {value}."],
    'occupation': ["{name} works as {value}.", "{name}'s occupation is {value}.",
                   "{name} is employed as {value}.", "By profession, {name} is {value}.",
                   "The profession of {name} is {value}."],
    'employer': ["{name} works for {value}.", "{name} is employed by {value}.",
                 "{name}'s employer is {value}.", "{name} draws a salary from {value}.",
                 "The company {name} works for is {value}."],
    'university': ["{name} studied at {value}.", "{name} graduated from {value}.",
                   "{name} is an alumnus of {value}.", "{name}'s alma mater is {value}.",
                   "{name} earned a degree at {value}."],
}
QUESTION_TEMPLATES = {
    'birth_date': ["When was {name} born?", "What is the birth date of {name}?",
                   "On what date was {name} born?", "What is {name}'s date of birth?"],
    'birth_place': ["Where was {name} born?", "What is the birthplace of {name}?",
                    "In which city was {name} born?", "What is {name}'s place of birth?"],
    'current_address': ["Where does {name} live?", "In which city does {name} live now?",
                        "What is the current city of {name}?", "Where is {name}'s home?"],
    'occupation': ["What does {name} do for a living?", "What is the occupation of {name}?",
                   "What is {name}'s job?", "How does {name} earn a living?"],
    'employer': ["Who employs {name}?", "Which company does {name} work for?",
                 "Who is {name}'s employer?", "Where is {name} employed?"],
    'university': ["Where did {name} study?", "Which university did {name} attend?",
                   "What is {name}'s alma mater?", "Where did {name} graduate?"],
}
# One answer sentence per attribute, ending with the value.
ANSWER_TEMPLATES = {
    'birth_date': "{name} was born on {value}",
    'birth_place': "{name} was born in {value}",
    'current_address': "{name} lives in {value}",
    'occupation': "{name} works as {value}",
    'employer': "{name} works for {value}",
    'university': "{name} studied at {value}",
}


def sql_for(attribute, name):
    """The query a tool-using model should write (names are quoted SQL string literals)."""
    return f"SELECT {attribute} FROM people WHERE name = '{name.replace(chr(39), chr(39) * 2)}'"


# ----------------------------------------------------------------------------- people
DEFAULTS = dict(num=1000, seed=0, held_out=0.2, unseen=100, extra='', bios_per_person=1,
                qa_per_fact=1, n_first_names=1000, unseen_first_frac=0.1, n_last_names=2000,
                n_cities=500, n_occupations=500, n_employers=500, n_universities=200,
                first_year=1950, last_year=1999,
                name_locales='en_US,en_GB,de_DE,fr_FR,es_ES,it_IT')


def check_options(opts, name=''):
    """Exit with a one-line error naming the first option (of DEFAULTS) whose value cannot work, before
    anything is drawn or written. Keys missing from opts take DEFAULTS' values. name: the config key that
    carried the options (train.py's people_options), named in the error too."""
    opts = {**DEFAULTS, **opts}

    def bad(key, allowed):
        sys.exit(f"error: {'config key ' + repr(name) + ': ' if name else ''}--{key} must be {allowed}, got {opts[key]!r}")
    for keys, ok, allowed in [
            (('num', 'bios_per_person', 'qa_per_fact', 'n_first_names', 'n_last_names', 'n_cities', 'n_occupations',
              'n_employers', 'n_universities'), lambda v: v > 0, '> 0'),
            (('seed', 'unseen'), lambda v: v >= 0, '>= 0'),
            (('held_out', 'unseen_first_frac'), lambda v: 0 <= v < 1, 'in [0, 1)'),
            (('first_year', 'last_year'), lambda v: 1 <= v <= 9999, 'a year in 1..9999')]:
        for key in keys:
            if not ok(opts[key]):
                bad(key, allowed)
    if opts['last_year'] < opts['first_year']:
        bad('last_year', f">= --first_year ({opts['first_year']})")
    if any(a not in EXTRA_ATTRIBUTES for a in opts['extra'].split(',') if a):
        bad('extra', f"a comma list of {EXTRA_ATTRIBUTES}")
    from faker.config import AVAILABLE_LOCALES
    if not opts['name_locales'] or any(loc not in AVAILABLE_LOCALES for loc in opts['name_locales'].split(',')):
        bad('name_locales', "a comma list of faker locales, e.g. 'en_US,de_DE'")


def dir_problem(path):
    """Why `path` cannot be (or become) a directory to write into, or None."""
    if not path:
        return "must not be empty"
    if os.path.exists(path) and not os.path.isdir(path):
        return "is a file, not a directory"
    up = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(up):
        up = os.path.dirname(up)
    if not os.path.isdir(up):
        return f"cannot be created: {up!r} is a file"
    if not os.access(path if os.path.isdir(path) else up, os.W_OK):
        return "is not writable"
    return None


def build_pools(opts):
    """Faker is slow per call, so draw each pool of unique values once; people sample from them."""
    from faker import Faker

    def unique(gen, n, what):
        seen, tries = {}, 0
        while len(seen) < n:
            seen.setdefault(gen(), None)
            tries += 1
            if tries > 50 * n + 1000:
                sys.exit(f"error: faker yields only {len(seen)} distinct {what}; lower n_{what}")
        return sorted(seen)  # sorted: the pool does not depend on dict order

    names = Faker(opts['name_locales'].split(','))
    names.seed_instance(opts['seed'])
    en = Faker('en_US')
    en.seed_instance(opts['seed'])
    first = unique(lambda: names.first_name(), opts['n_first_names'], 'first_names')
    pools = {
        'last_name': unique(lambda: names.last_name(), opts['n_last_names'], 'last_names'),
        'city': unique(en.city, opts['n_cities'], 'cities'),
        'occupation': unique(en.job, opts['n_occupations'], 'occupations'),
        'employer': unique(en.company, opts['n_employers'], 'employers'),
    }
    pools['university'] = [f"University of {c}" for c in unique(en.city, opts['n_universities'], 'universities')]
    d0, d1 = datetime.date(opts['first_year'], 1, 1), datetime.date(opts['last_year'], 12, 31)
    days = [d0 + datetime.timedelta(i) for i in range((d1 - d0).days + 1)]
    pools['birth_date'] = [f"{d:%B} {d.day}, {d.year}" for d in days]
    # First names held out of training and held-out people, for the 'unseen' group. Drawn per name shape
    # (words, hyphen), each shape giving its share: 'unseen' must test new names, not shapes training lacks
    # (an unstratified draw once put 4 of the pool's 9 two-word first names into the 100 unseen ones).
    rng = np.random.default_rng(opts['seed'])
    perm = rng.permutation(len(first))
    shape = [(len(first[i].split()), '-' in first[i]) for i in perm]
    unseen = set()
    for s in sorted(set(shape)):
        members = [i for i, si in zip(perm, shape) if si == s]   # in permutation order
        unseen.update(members[:int(round(opts['unseen_first_frac'] * len(members)))])
    if not unseen:
        unseen.add(perm[0])
    pools['unseen_first_name'] = sorted(first[i] for i in unseen)
    pools['first_name'] = sorted(first[i] for i in range(len(first)) if i not in unseen)
    return pools


def attribute_pool(attr):
    return {'birth_place': 'city', 'current_address': 'city'}.get(attr, attr)


def attributes(opts):
    extra = [a for a in opts['extra'].split(',') if a]
    for a in extra:
        if a not in EXTRA_ATTRIBUTES:
            sys.exit(f"error: unknown extra attribute {a!r} (choose from {EXTRA_ATTRIBUTES})")
    return QA_ATTRIBUTES + extra


class People:
    """The people as columns (values are indices into the pools): compact enough for millions."""

    def __init__(self, opts, pools, names, split, values):
        self.opts, self.pools, self.names, self.split, self.values = opts, pools, names, split, values
        self.attrs = list(values)

    def __len__(self):
        return len(self.names)

    def value(self, attr, i):
        return self.pools[attribute_pool(attr)][self.values[attr][i]]

    def meta(self):
        sizes = {a: len(self.pools[attribute_pool(a)]) for a in self.attrs}
        return {'version': VERSION, 'options': self.opts, 'attributes': self.attrs, 'pool_sizes': sizes,
                'bits_per_fact': {a: math.log2(n) for a, n in sizes.items()},
                'name_pool': {k: len(self.pools[k]) for k in ('first_name', 'unseen_first_name', 'last_name')},
                'splits': {s: self.split.count(s) for s in SPLITS}}


SPLITS = ('train', 'held_out', 'unseen')
VERSION = 2   # of the generator: data in a directory made by another version is not reused (prepare)


def make_people(opts):
    """-> People. Deterministic in opts (faker pools and numpy draws are both seeded)."""
    pools = build_pools(opts)
    rng = np.random.default_rng(opts['seed'] + 1)
    attrs = attributes(opts)
    names, split = [], []
    for group, n, first in [('seen', opts['num'], pools['first_name']),
                            ('unseen', opts['unseen'], pools['unseen_first_name'])]:
        last = pools['last_name']
        if n > len(first) * len(last):
            sys.exit(f"error: {n} unique names need more than the {len(first) * len(last)} first x last name "
                     f"combinations; raise --n_first_names or --n_last_names")
        f_idx, l_idx = np.divmod(rng.choice(len(first) * len(last), size=n, replace=False), len(last))
        names += [f"{first[f]} {last[l]}" for f, l in zip(f_idx.tolist(), l_idx.tolist())]
        n_held = int(round(opts['held_out'] * n)) if group == 'seen' else 0
        split += ['unseen'] * n if group == 'unseen' else ['train'] * (n - n_held) + ['held_out'] * n_held
    values = {a: rng.integers(0, len(pools[attribute_pool(a)]), size=len(names)) for a in attrs}
    return People(opts, pools, names, split, values)


# ----------------------------------------------------------------------------- documents
# Written straight as JSON text from pre-escaped pieces: json.dumps per record is the bottleneck
# at a million people (the bench.py data target is bios + QA for 1M people in under a minute).
def _esc(s):
    return json.dumps(s, ensure_ascii=False)[1:-1]


def _msg(role, content):
    return '{"role":"%s","content":"%s"}' % (role, content)


def people_lines(P, lo, hi):
    pools = [[_esc(v) for v in P.pools[attribute_pool(a)]] for a in P.attrs]
    cols = [P.values[a][lo:hi].tolist() for a in P.attrs]
    return ['{"id":%d,"name":"%s","split":"%s",' % (lo + i, _esc(P.names[lo + i]), P.split[lo + i]) +
            ','.join('"%s":"%s"' % (a, pool[col[i]]) for a, pool, col in zip(P.attrs, pools, cols)) + '}\n'
            for i in range(hi - lo)]


def bio_lines(P, lo, hi, choices):
    """One paraphrase template per attribute, sentence order shuffled per biography."""
    tmpl, order = choices
    per = P.opts['bios_per_person']
    names = [_esc(n) for n in P.names[lo:hi]]
    values = [[_esc(P.pools[attribute_pool(a)][v]) for v in P.values[a][lo:hi].tolist()] for a in P.attrs]
    temps = [[_esc(t) for t in BIO_TEMPLATES[a]] for a in P.attrs]
    out = []
    for r, (tr, orr) in enumerate(zip(tmpl[lo * per:hi * per].tolist(), order[lo * per:hi * per].tolist())):
        i = r // per
        text = ' '.join([temps[j][tr[j]].format(name=names[i], value=values[j][i]) for j in orr])
        out.append('{"id":%d,"split":"%s","messages":[%s]}\n' % (lo + i, P.split[lo + i], _msg('text', text)))
    return out


def qa_lines(P, lo, hi, tool, tmpl):
    """Per person, one dialog per (attribute, repeat); the question template drawn at random."""
    names = [_esc(n) for n in P.names[lo:hi]]
    sql_names = [_esc(n.replace("'", "''")) for n in P.names[lo:hi]]  # SQL string literal, JSON-escaped
    per_attr = [(a, [_esc(v) for v in P.pools[attribute_pool(a)]], P.values[a][lo:hi].tolist(),
                 [_esc(q) for q in QUESTION_TEMPLATES[a]], _esc(ANSWER_TEMPLATES[a]), _esc(sql_for(a, '{}')))
                for a in P.attrs]
    out = []
    for i, choices in enumerate(tmpl[lo:hi].tolist()):
        name, head = names[i], '{"id":%d,"split":"%s","attribute":"' % (lo + i, P.split[lo + i])
        for (a, pool, values, qs, ans, sql), ts in zip(per_attr, choices):
            value = pool[values[i]]
            start = head + a + '","answer":"' + value + '","messages":[{"role":"user","content":"'
            tail = '"},' + _msg('assistant', ans.format(name=name, value=value)) + ']}\n'
            if tool:
                tail = '"},' + _msg('sql', sql.format(sql_names[i])) + ',' + _msg('result', value) + tail[2:]
            for t in ts:
                out.append(start + qs[t].format(name=name) + tail)
    return out


def doc_choices(P, what):
    """All random template choices up front, so the output does not depend on the chunking."""
    n, k, seed = len(P), len(P.attrs), P.opts['seed']
    if what == 'bios':
        rng = np.random.default_rng(seed + 2)
        m = n * P.opts['bios_per_person']
        return rng.integers(0, 5, size=(m, k), dtype=np.int8), np.argsort(rng.random((m, k)), axis=1)
    rng = np.random.default_rng(seed + (4 if what == 'qa_tool' else 3))
    return rng.integers(0, 4, size=(n, k, P.opts['qa_per_fact']), dtype=np.int8)


# ----------------------------------------------------------------------------- files
FILES = {'people': 'people.jsonl', 'bios': 'biographies.jsonl', 'qa': 'qa.jsonl', 'qa_tool': 'qa_tool.jsonl'}
CHUNK = 20_000  # people per write: bounded memory at any scale


def write_file(P, data_dir, what):
    from tqdm import tqdm
    path = os.path.join(data_dir, FILES[what])
    choices = None if what == 'people' else doc_choices(P, what)
    tmp, n_docs = f'{path}.{os.getpid()}.tmp', 0   # per process: two runs may write the same data at once
    with open(tmp, 'w', encoding='utf-8') as f:
        for lo in tqdm(range(0, len(P), CHUNK), desc=FILES[what], unit='chunk', disable=len(P) <= CHUNK):
            hi = min(lo + CHUNK, len(P))
            if what == 'people':
                lines = people_lines(P, lo, hi)
            elif what == 'bios':
                lines = bio_lines(P, lo, hi, choices)
            else:
                lines = qa_lines(P, lo, hi, what == 'qa_tool', choices)
            f.write(''.join(lines))
            n_docs += len(lines)
    os.replace(tmp, path)  # a crash never leaves a half-written file under the real name
    return path, n_docs


def write_files(P, data_dir, whats, workers=2):
    """Write several files, in parallel worker processes (forked: they share P without copying)."""
    import multiprocessing as mp
    global _P
    _P = P
    whats = sorted(whats, key=['qa_tool', 'qa', 'bios', 'people'].index)  # longest first
    if workers > 1 and len(whats) > 1 and len(P) >= 50_000 and 'fork' in mp.get_all_start_methods():
        with mp.get_context('fork').Pool(min(workers, len(whats))) as pool:
            done = pool.starmap(_write_forked, [(data_dir, w) for w in whats])
    else:
        done = [write_file(P, data_dir, w) for w in whats]
    for w, (path, n) in zip(whats, done):
        print(f"{n} {w} rows -> {path}")


def _write_forked(data_dir, what):
    return write_file(_P, data_dir, what)


def read_jsonl(path):
    if not os.path.exists(path):
        sys.exit(f"error: {path} not found (generate it with data.py, see its docstring)")
    with open(path, encoding='utf-8') as f:
        return [json.loads(line) for line in f]


def load_meta(data_dir):
    path = os.path.join(data_dir, 'meta.json')
    if not os.path.exists(path):
        sys.exit(f"error: {path} not found; run `python data.py people --data_dir {data_dir}` first")
    with open(path) as f:
        return json.load(f)


def generate(data_dir, what, **overrides):
    """Write one of people / bios / qa / qa_tool into data_dir. Documents are rendered from the same
    seeded draw as people.jsonl (options in meta.json), so people must have been generated first."""
    if what == 'people':
        opts = {**DEFAULTS, **overrides}
    else:
        opts = {**load_meta(data_dir)['options'], **overrides}
    check_options(opts)
    P = make_people(opts)
    meta = P.meta()
    os.makedirs(data_dir, exist_ok=True)  # only now: a bad option or name count leaves nothing behind
    path, n = write_file(P, data_dir, what)
    with open(os.path.join(data_dir, 'meta.json'), 'w') as f:  # options may change, e.g. bios_per_person
        json.dump(meta, f, indent=1)
    extra = f"; splits {meta['splits']}; pool sizes {meta['pool_sizes']}" if what == 'people' else ''
    print(f"{n} {what} rows -> {path}{extra}")


# train.py sets these options through keys of its own; people_options may set any other of DEFAULTS.
RUN_OPTIONS = ('num', 'held_out', 'unseen', 'bios_per_person', 'seed')


def parse_people_options(text):
    """'n_cities=200,name_locales=en_US' -> ({option: typed value}, None), or (None, why it cannot be read).
    Only what a comma list can hold: name_locales takes one locale here."""
    out = {}
    for item in filter(None, text.split(',')):
        key, eq, value = item.partition('=')
        if not eq or key not in DEFAULTS or key in RUN_OPTIONS:
            return None, f"{item!r} is not option=value with an option of data.py other than {RUN_OPTIONS}"
        try:
            out[key] = type(DEFAULTS[key])(value)
        except ValueError:
            return None, f"{key} takes a {type(DEFAULTS[key]).__name__}, got {value!r}"
    return out, None


def dir_of(cfg):
    """The data folder of a run's config (train.py's keys): its data_dir, or data/<people options>."""
    if cfg['data_dir']:
        return cfg['data_dir']
    pools = cfg.get('people_options', '')
    return os.path.join('data', f"p{cfg['n_people']}_h{cfg['held_out']}_u{cfg['n_unseen']}_"
                                f"b{cfg['bios_per_person']}_s{cfg['data_seed']}" +
                        ('_' + pools.replace(',', '_').replace('=', '') if pools else ''))


def options_of(cfg):
    """prepare()'s options from a run's config."""
    return dict(num=cfg['n_people'], held_out=cfg['held_out'], unseen=cfg['n_unseen'],
                bios_per_person=cfg['bios_per_person'], seed=cfg['data_seed'],
                **parse_people_options(cfg.get('people_options', ''))[0])


def prepare(data_dir, **opts):
    """Generate whatever is missing in data_dir (people, bios, both QA sets, the database), as
    train.py does. Existing data generated with other options is an error, never silently reused."""
    want = {**DEFAULTS, **opts}
    check_options(want)
    if os.path.exists(os.path.join(data_dir, 'meta.json')):
        meta = load_meta(data_dir)
        if meta.get('version', 1) != VERSION:
            sys.exit(f"error: {data_dir} was generated by data.py version {meta.get('version', 1)}, this is version "
                     f"{VERSION} (other people); delete it or use another data_dir")
        have = meta['options']
        diff = [k for k in want if have.get(k) != want[k]]
        if diff:
            sys.exit(f"error: {data_dir} holds data generated with other options "
                     f"({', '.join(f'{k}={have.get(k)!r}' for k in diff)}); use another data_dir or delete it")
    missing = [w for w in FILES if not os.path.exists(os.path.join(data_dir, FILES[w]))]
    if missing:
        P = make_people(want)
        os.makedirs(data_dir, exist_ok=True)  # only now: a name count that cannot work leaves nothing behind
        # meta.json first, whole or absent: a run preparing the same folder at once finds it before the files
        tmp = os.path.join(data_dir, f'meta.json.{os.getpid()}.tmp')
        with open(tmp, 'w') as f:
            json.dump(P.meta(), f, indent=1)
        os.replace(tmp, os.path.join(data_dir, 'meta.json'))
        write_files(P, data_dir, missing)
    if not os.path.exists(os.path.join(data_dir, db.DB_FILE)):
        db.create(data_dir)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('what', choices=['people', 'bios', 'qa', 'all'])
    ap.add_argument('--data_dir', default='data')
    ap.add_argument('--tool', action='store_true', help="qa: the assistant answers through a SQL query")
    for k, v in DEFAULTS.items():
        ap.add_argument(f'--{k}', type=type(v), default=None, help=f"default {v}")
    args = vars(ap.parse_args(argv))
    what, data_dir, tool = args.pop('what'), args.pop('data_dir'), args.pop('tool')
    given = {k: v for k, v in args.items() if v is not None}
    problem = dir_problem(data_dir)
    if problem:
        sys.exit(f"error: --data_dir {data_dir!r} {problem}")
    check_options({**DEFAULTS, **given})   # before data_dir's meta.json is read: the options given are checked
    if what == 'all':
        prepare(data_dir, **given)
    else:
        generate(data_dir, 'qa_tool' if what == 'qa' and tool else what, **given)


if __name__ == '__main__':
    main()
