"""The benchmark harness (extra ``bench``): the paper's experiments and the memory benchmarks.

The evaluation data is never part of this repository: it is read from a directory given with
``--data``, the ``SLEEPTIME_DATA`` environment variable, or ``../shared/data`` (see
:func:`sleeptime_bench.paths.data_dir`).

The package ships in the same distribution as the library, so importing it without the extra's
dependencies raises :class:`~sleeptime_agent.errors.MissingExtra` with the install hint here,
instead of an ImportError deep inside a plotting module.
"""

from __future__ import annotations

from importlib.util import find_spec

from sleeptime_agent.errors import MissingExtra

for _module in ("matplotlib", "tqdm"):
    if find_spec(_module) is None:
        raise MissingExtra("bench", _module)

__all__: list[str] = []
