"""The consolidation pipeline for small models: code attributes and dates, the model labels.

See :mod:`sleeptime_agent.pipeline.graph` for the graph and
:class:`~sleeptime_agent.pipeline.consolidator.PipelineConsolidator` for how it runs.
"""

from sleeptime_agent.pipeline.consolidator import PipelineConsolidator

__all__ = ["PipelineConsolidator"]
