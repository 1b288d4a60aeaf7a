"""
Benchmarks: figures and ratios measured side by side in one run (never timed asserts in tests).

    python bench.py data [--num 1000000]   # people/s, bios+QA time, DB build, run_sql latency
"""
import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_data(num):
    import data
    import db
    d = tempfile.mkdtemp(prefix='bench_data_')
    try:
        opts = {**data.DEFAULTS, 'num': num, 'unseen': num // 10}
        t0 = time.perf_counter()
        P = data.make_people(opts)
        t_people = time.perf_counter() - t0
        t = {}
        for what in data.FILES:  # one at a time, to see each file's cost
            t0 = time.perf_counter()
            data.write_file(P, d, what)
            t[what] = time.perf_counter() - t0
        t0 = time.perf_counter()
        data.write_files(P, d, list(data.FILES), workers=2)  # as data.py does it
        t_par = time.perf_counter() - t0
        with open(os.path.join(d, 'meta.json'), 'w') as f:
            json.dump(P.meta(), f)
        t0 = time.perf_counter()
        path = db.create(d)
        t_db = time.perf_counter() - t0
        people = [{'name': P.names[i], 'birth_place': P.value('birth_place', i)} for i in range(0, len(P), max(1, len(P) // 2000))]
        lat = []
        for p in people:
            q = data.sql_for('birth_place', p['name'])
            t0 = time.perf_counter()
            out = db.run_sql(q, path)
            lat.append(time.perf_counter() - t0)
            assert out == p['birth_place'], (q, out)
        n, mb = len(P), lambda w: os.path.getsize(os.path.join(d, data.FILES[w])) / 2**20
        print(f"\n{'what':40s} {'figure':>14s}   goal")
        print(f"{'people drawn (incl. unseen group)':40s} {n:>14,d}")
        print(f"{'people drawn per second':40s} {n / t_people:>10,.0f} p/s   ({t_people:.1f} s, faker pools included)")
        for w in data.FILES:
            print(f"{'  write ' + data.FILES[w]:40s} {t[w]:>12.1f} s   ({mb(w):,.0f} MB)")
        print(f"{'  the four files, one process':40s} {sum(t.values()):>12.1f} s")
        print(f"{'  the four files, 2 worker processes':40s} {t_par:>12.1f} s")
        total = t_people + t_par
        print(f"{'total: people + bios + QA + tool QA':40s} {total:>12.1f} s   < 60 s: {'yes' if total < 60 else 'NO'}")
        print(f"{'DB build (people.db)':40s} {t_db:>12.1f} s   < 30 s: {'yes' if t_db < 30 else 'NO'}")
        med = statistics.median(lat) * 1e6
        print(f"{'run_sql indexed lookup, median':40s} {med:>11.0f} us   < 100 us: {'yes' if med < 100 else 'NO'}")
        print(f"{'run_sql indexed lookup, p90':40s} {sorted(lat)[int(0.9 * len(lat))] * 1e6:>11.0f} us")
        print(f"{'peak memory (RSS)':40s} {peak_rss_mb():>11,.0f} MB   < 4096 MB: {'yes' if peak_rss_mb() < 4096 else 'NO'}")
    finally:
        shutil.rmtree(d)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('what', choices=['data'])
    ap.add_argument('--num', type=int, default=1_000_000, help='data: number of people')
    args = ap.parse_args(argv)
    if args.what == 'data':
        bench_data(args.num)


if __name__ == '__main__':
    sys.exit(main())
