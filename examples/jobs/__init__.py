"""An example generation job queue built on trio_context.

Run it from the repository root::

    python examples/jobs demo                # a terminal demo with live progress bars
    python examples/jobs serve --port 8000   # the HTTP API

Read it top to bottom: ``model.py`` (specs, states, snapshots, events, errors), ``work.py`` (the
three kinds of work: an async step loop, a CPU-bound loop in a worker thread, a worker process,
``worker.py``), ``events.py`` (event streams that never block the queue), ``records.py`` (a job's
bookkeeping), ``jobqueue.py`` (the queue: limit, cancel, close, destroy, cache), ``lifetime.py``
(``open_job_queue``: the group the jobs run in), ``api.py`` (the HTTP API on Starlette),
``server.py`` (hypercorn and the graceful close), ``demo.py`` (the terminal demo) and ``cli.py``
(arguments and Ctrl-C).
"""
