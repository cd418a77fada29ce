"""The benchmark harness: data loaders, scoring, cost model, resumable results and plots.

Everything here is model-free. The evaluation data is never part of this repository: it is read
from a directory given with ``--data``, the ``SLEEPTIME_DATA`` environment variable, or
``../shared/data`` (see :func:`sleeptime_bench.data.data_dir`).
"""

__all__: list[str] = []
