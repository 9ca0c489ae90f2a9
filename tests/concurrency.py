"""Start several processes at the same moment (a barrier) and collect what each returned.

The tests of concurrent first uses (dataset build, few-shot cache, digits-tiny cache) share this.
"""
import multiprocessing


def _at_barrier(target, args, barrier, results):
    barrier.wait()  # every process starts its work at the same moment
    try:
        results.put(target(*args))
    except BaseException as err:  # report it to the test instead of dying silently
        results.put(f"error: {err!r}")


def run_at_once(target, args=(), processes=2, method="fork", timeout=120):
    """``target(*args)`` in ``processes`` processes released together; their results in finishing order.

    A process that raised returns ``"error: ..."``. ``method``: "fork", or "spawn" where the parent already
    runs torch threads (``target`` must then be importable). Every process must exit with code 0.
    """
    ctx = multiprocessing.get_context(method)
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    procs = [ctx.Process(target=_at_barrier, args=(target, args, barrier, results)) for _ in range(processes)]
    for p in procs:
        p.start()
    got = [results.get(timeout=timeout) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0, f"a concurrent process ended with exit code {p.exitcode}"
    return got
