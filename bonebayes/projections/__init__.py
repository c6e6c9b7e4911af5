"""Treatment projections with uncertainty bands (issue 4).

>>> from bonebayes.projections import project, load_scenario
>>> ds = project("results/fit.nc", "scenarios/denosumab_vs_placebo.toml")
>>> ds["bmd_summary"].sel(arm="denosumab", site="lumbar_spine", stat="median")

See :mod:`bonebayes.projections.scenario` (the TOML format), :mod:`~bonebayes.projections.engine` (what is
projected and what is not), :mod:`~bonebayes.projections.output` (JSON/CSV/table) and
:mod:`~bonebayes.projections.plots` (fan charts).
"""

from bonebayes.projections.engine import DENOSUMAB_REBOUND_NOTE, ENDPOINTS, point_posterior, project
from bonebayes.projections.parameters import ProjectionError
from bonebayes.projections.scenario import Scenario, ScenarioError, load_scenario, shipped_scenarios

__all__ = [
    "DENOSUMAB_REBOUND_NOTE",
    "ENDPOINTS",
    "ProjectionError",
    "Scenario",
    "ScenarioError",
    "load_scenario",
    "point_posterior",
    "project",
    "shipped_scenarios",
]
