"""The rewritten log-density graph must not grow with the number of observations (compile time does)."""

from __future__ import annotations

import numpy as np
import pytest

from bonebayes.datasets.synthetic import SyntheticDesign, simulate_cohort
from bonebayes.models._gather import take_by_index
from bonebayes.models.individual import IndividualModel


def _rewritten_logp_nodes(n_subjects: int) -> list:
    import pytensor
    from pymc.model.transform.optimization import freeze_dims_and_data
    from pytensor.compile.mode import Mode

    coh = simulate_cohort(SyntheticDesign(n_subjects=n_subjects, n_cohorts=1), seed=2)
    m = freeze_dims_and_data(IndividualModel(coh.observations, coh.exposures).model)
    fn = pytensor.function(m.value_vars, m.logp(), mode=Mode(linker="py", optimizer="fast_run"),
                           on_unused_input="ignore")
    return fn.maker.fgraph.toposort()


def test_logp_graph_has_no_per_observation_vectors():
    """stack(params)[constant index] must not be rewritten into one scalar input per observation."""
    from pytensor.tensor.basic import MakeVector

    small, large = _rewritten_logp_nodes(2), _rewritten_logp_nodes(6)  # 28 and 84 marker observations
    widest = max((len(nd.inputs) for nd in large if isinstance(nd.op, MakeVector)), default=0)
    assert widest < 20, f"a MakeVector of the rewritten graph has {widest} inputs (one per observation)"
    assert abs(len(large) - len(small)) <= 5, (len(small), len(large))


def test_take_by_index_equals_indexing():
    import pytensor.tensor as pt

    v = pt.stack([pt.as_tensor(1.5), pt.as_tensor(-2.0), pt.as_tensor(0.25)])
    idx = np.array([2, 0, 0, 1, 2])
    np.testing.assert_array_equal(take_by_index(v, idx, 3).eval(), np.array([0.25, 1.5, 1.5, -2.0, 0.25]))
    with pytest.raises(IndexError, match="0..2"):
        take_by_index(v, np.array([3]), 3)
