"""The temporal-ensemble weight rule shared by the executor and the Meta-World bench."""

import numpy as np

from vla_policy_node.control.ensemble import ensemble_weights


def test_weights_count_only_the_chunks_that_cover_each_time() -> None:
    covers = np.array([[True, True, False],
                       [False, True, True],
                       [True, True, True]])
    w = ensemble_weights(covers, decay=0.5)
    e = np.exp(-0.5)
    np.testing.assert_allclose(w, [[1.0, 1.0, 0.0],
                                   [0.0, e, 1.0],
                                   [e, e * e, e]])


def test_one_time_all_chunks_live_is_a_plain_geometric_series() -> None:
    np.testing.assert_allclose(ensemble_weights(np.ones(4, bool), decay=0.1), np.exp(-0.1 * np.arange(4)))
    np.testing.assert_array_equal(ensemble_weights(np.ones(3, bool), decay=0.0), [1.0, 1.0, 1.0])
