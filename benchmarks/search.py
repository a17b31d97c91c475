"""Neighbour search at survey scale, side by side with the baselines, in one run.

    python -m benchmarks.search --n 1000000 --dim 128 --k 50

- **this project**: the bundle's own index (chosen by N, see :mod:`explorer.core.search`), queried
  through ``neighbours_of_row`` exactly as a click on the map does; the bundle is loaded in a
  fresh process, which reports the load time and its peak resident memory;
- **FAISS exact**: ``IndexFlatIP`` over the same embeddings;
- **numpy brute force**: ``embeddings @ q`` and a partial sort (the AstroCLIP app), the faster of
  one and all BLAS threads;
- **sklearn BallTree on PCA** (paper 1's app): PCA to min(200, D) dimensions, Euclidean
  BallTree; above ``--balltree-max`` sources it is built on a random subset and the query
  time is scaled linearly in N (printed as such).

Queries are random catalogue rows (single queries, one after another, as clicks arrive);
recall@k is against exact search. The synthetic bundle (:func:`benchmarks.synthetic.cached_bundle`)
is built once and cached, index included. The last line is machine-readable.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import time

import faiss
import numpy as np
from threadpoolctl import threadpool_limits

from benchmarks.synthetic import cached_bundle
from explorer.core.search import recall_at_k, search_vectors

TARGET_P50_MS = 5.0
TARGET_RECALL = 0.95
TARGET_LOAD_S = 5.0
TARGET_RSS_GB = 4.0


def peak_rss_gb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, it does not inherit the parent's peak)."""
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1e6  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def timed_queries(search, queries) -> tuple[np.ndarray, list]:
    """Milliseconds per single query, and each query's result rows."""
    times, results = [], []
    for q in queries:
        start = time.perf_counter()
        results.append(search(q))
        times.append((time.perf_counter() - start) * 1000)
    return np.asarray(times), results


def project_search(path: str, rows: np.ndarray, k: int, out) -> None:
    """In a fresh process: load the bundle, then click-style queries; reports timings and memory."""
    from explorer.core.bundle import load_bundle
    from explorer.core.search import neighbours_of_row

    start = time.perf_counter()
    bundle = load_bundle(path)
    load_s = time.perf_counter() - start
    neighbours_of_row(bundle, int(rows[0]), k)  # first touch of the index and the memory map
    times, found = timed_queries(lambda r: np.r_[r, neighbours_of_row(bundle, int(r), k - 1).rows], rows)
    out.put({"load_s": load_s, "times": times, "found": np.asarray(found), "rss_gb": peak_rss_gb(),
             "index": bundle.manifest.index})


def run_project_search(path, rows, k) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=project_search, args=(str(path), rows, k, queue))
    child.start()
    result = queue.get()
    child.join()
    return result


def balltree_search(x: np.ndarray, queries_rows: np.ndarray, k: int, cap: int, seed: int) -> dict:
    """Paper 1's search: PCA (<= 200 d) then a Euclidean BallTree; subset of ``cap`` rows when N is larger."""
    from sklearn.decomposition import PCA
    from sklearn.neighbors import BallTree

    n = len(x)
    rng = np.random.default_rng(seed)
    subset = np.sort(rng.choice(n, size=cap, replace=False)) if n > cap else np.arange(n)
    data = np.asarray(x[subset], dtype=np.float64)
    start = time.perf_counter()
    pca = PCA(n_components=min(200, x.shape[1]), random_state=seed).fit(data[rng.choice(len(data), min(len(data), 100_000),
                                                                                          replace=False)])
    reduced = pca.transform(data)
    tree = BallTree(reduced)
    build_s = time.perf_counter() - start
    queries = pca.transform(np.asarray(x[queries_rows], dtype=np.float64))
    times, found = timed_queries(lambda q: tree.query(q[None], k=k)[1][0], queries)
    return {"build_s": build_s, "times": times * (n / len(subset)), "measured_on": len(subset),
            "found": subset[np.asarray(found)] if n <= cap else None}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.search", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--balltree-max", type=int, default=1_000_000,
                        help="build the BallTree on at most this many sources and scale its time linearly")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    path = cached_bundle(args.n, args.dim)
    x = np.load(path / "embeddings.npy", mmap_mode="r")
    rows = np.random.default_rng(args.seed + 100).choice(args.n, size=min(args.queries, args.n), replace=False)
    queries = np.ascontiguousarray(x[rows])
    print(f"{args.n:,} sources x {args.dim}-d, k={args.k}, {len(rows)} single queries, "
          f"{len(os.sched_getaffinity(0))} CPU(s), FAISS threads {faiss.omp_get_max_threads()}, "
          f"load average {os.getloadavg()[0]:.1f}\n", flush=True)

    truth = faiss.knn(queries, np.ascontiguousarray(x), args.k, metric=faiss.METRIC_INNER_PRODUCT)[1]
    ours = run_project_search(path, rows, args.k)

    start = time.perf_counter()
    exact = faiss.IndexFlatIP(args.dim)
    exact.add(np.ascontiguousarray(x))
    exact_build = time.perf_counter() - start
    exact_times, exact_found = timed_queries(lambda q: search_vectors(exact, q, args.k)[1][0], queries)
    del exact

    in_memory = np.ascontiguousarray(x)

    def numpy_search(q):
        sims = in_memory @ q
        top = np.argpartition(-sims, args.k)[:args.k]
        return top[np.argsort(-sims[top])]

    numpy_times, numpy_found = timed_queries(numpy_search, queries)
    with threadpool_limits(1):  # report the baseline at its best: one BLAS thread can be faster for one query
        one_thread = timed_queries(numpy_search, queries)[0]
    numpy_times = min(numpy_times, one_thread, key=np.median)
    ball = balltree_search(x, rows, args.k, args.balltree_max, args.seed)


    def line(name, build, times, found, note=""):
        recall = f"{recall_at_k(np.asarray(found), truth):.3f}" if found is not None else "  -  "
        print(f"{name:<34}{build:>12}{np.median(times):>10.2f}{np.percentile(times, 95):>10.2f}{recall:>10}  {note}")

    index = ours["index"]
    knob = {k: index[k] for k in ("nlist", "nprobe", "efSearch", "pq_bytes") if k in index}
    print(f"{'method':<34}{'build s':>12}{'p50 ms':>10}{'p95 ms':>10}{'recall@k':>10}")
    line(f"this project ({index['kind']})", "cached", ours["times"], ours["found"], f"{knob}")
    line("FAISS exact (IndexFlatIP)", f"{exact_build:.1f}", exact_times, exact_found)
    line("numpy brute force (AstroCLIP app)", "-", numpy_times, numpy_found)
    scaled = "" if ball["measured_on"] == args.n else f"built on {ball['measured_on']:,}, time x{args.n / ball['measured_on']:.1f}"
    line(f"BallTree on {min(200, args.dim)}-d PCA (paper 1)", f"{ball['build_s']:.1f}", ball["times"], ball["found"], scaled)

    p50, recall = float(np.median(ours["times"])), recall_at_k(ours["found"], truth)
    ball_p50, numpy_p50 = float(np.median(ball["times"])), float(np.median(numpy_times))
    print(f"\nbundle load (fresh process) {ours['load_s']:.2f} s; its peak resident memory {ours['rss_gb']:.2f} GB; "
          f"recall@{args.k} stored in the manifest {index.get('recall_at_k')}; this benchmark's own peak "
          f"{peak_rss_gb():.2f} GB")
    checks = [("p50", p50 <= TARGET_P50_MS, f"{p50:.2f} ms <= {TARGET_P50_MS} ms"),
              ("recall", recall >= TARGET_RECALL, f"{recall:.3f} >= {TARGET_RECALL}"),
              ("load", ours["load_s"] <= TARGET_LOAD_S, f"{ours['load_s']:.2f} s <= {TARGET_LOAD_S} s"),
              ("memory", ours["rss_gb"] <= TARGET_RSS_GB, f"{ours['rss_gb']:.2f} GB <= {TARGET_RSS_GB} GB")]
    print("targets: " + "; ".join(f"{name} {'met' if ok else 'MISSED'} ({text})" for name, ok, text in checks))
    print(f"n={args.n} p50_ms={p50:.3f} recall_at_k={recall:.4f} balltree_p50_ms={ball_p50:.2f} "
          f"bruteforce_p50_ms={numpy_p50:.2f} speedup_vs_balltree={ball_p50 / p50:.1f}")


if __name__ == "__main__":
    main()
