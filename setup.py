"""Only for the optional compiled core; everything else is in pyproject.toml.

    RISKGATE_COMPILE=1 pip install --no-build-isolation -e .

compiles the pure decision core (supervisor/core: validation, checks,
evaluation, the gate's state) with mypyc, from the same typed modules; it
needs mypy and setuptools>=77 in the environment (docs/benchmarks.md). Without
the variable nothing is compiled: the pure-Python modules are the default and
the reference the tests hold both to.
"""

from __future__ import annotations

import os

from setuptools import setup

COMPILED = [
    "supervisor/core/values.py",
    "supervisor/core/orders.py",
    "supervisor/core/checks.py",
    "supervisor/core/evaluate.py",
    "supervisor/core/verdicts.py",
    "supervisor/core/gate_state.py",
]

ext_modules = []
if os.environ.get("RISKGATE_COMPILE") == "1":
    from mypyc.build import mypycify

    ext_modules = mypycify(COMPILED, opt_level="3")

setup(ext_modules=ext_modules)
