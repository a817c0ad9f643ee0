"""Flywheel's latency benchmark: how much time the gateway adds over calling the upstream directly.

Run with `make bench` or `python -m bench.latency --help`. Nothing here is part of the package;
it is a script with a few small modules so each concern (fake upstream, floor forwarder, child
processes, load generation, statistics, report) can be read on its own.
"""
