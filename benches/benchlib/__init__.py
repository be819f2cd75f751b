"""The pieces the benchmark scripts in ``benches/`` are built from.

Each module is one job, so a new measurement (another load generator,
another scenario, another figure per run) adds a module or a function
instead of growing a script:

- ``host``: where things are (repository, binary, loopback address),
  progress output, free ports, installing and building what a run needs.
- ``fixtures``: the document root every server serves, with known bytes.
- ``servers``: starting, checking and stopping mioserve, nginx and lighttpd
  as child processes on 127.0.0.1; their processes and memory.
- ``procfs``: what ``/proc`` says about a process group: members, CPU
  time, memory, threads.
- ``cpu``: who used the cores during a run, from ``/proc``, and waiting
  for other processes to leave them alone before one.
- ``load``: what one load-generator run measured (`LoadResult`), whichever
  generator ran it, including the server's CPU per request.
- ``wrk``: the wrk command line, running it, and parsing its output.
- ``oha``: the oha load generator, open loop at a fixed rate with
  latency correction, installed with cargo when missing.
- ``overload``: a flood far past capacity with a prober beside it.
- ``downloads``: many large downloads at once with ``curl --parallel``,
  and Jain's fairness index.
- ``tables``: medians, number formats and markdown tables for reports.
- ``scenarios``, ``idle``, ``syscalls``, ``suite_report``: the suite's
  scenarios, its idle-connection and syscall measurements, and its result
  files (``benches/suite.py`` puts them together).

Only the Python 3.11 standard library is used. Traffic goes to 127.0.0.1
only.
"""
