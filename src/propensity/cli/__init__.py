"""The ``propensity`` command line, thin: parse flags (:mod:`.parser`), call one job per command
(:mod:`.commands`, :mod:`propensity.jobs`), print (:mod:`.printing`, the only place that prints). The console
script runs each command in a child process (:mod:`.supervisor`), so a native crash becomes one line.
"""

from propensity.cli.app import main, run

__all__ = ["main", "run"]
