import numpy as np
import pytest

from search.protocols import Context, Dataset, UserError
from spaces.eml.constants import EmlConstantsConfig, EmlConstantsSpace
from spaces.eml.tree import EML, ONE, VAR0

X = np.linspace(0.5, 2.0, 60)[:, None]


def space_for(y, **config):
    data = Dataset(X=X, y=y, variables=("x",), target="y")
    return EmlConstantsSpace(EmlConstantsConfig(max_depth=3, **config), Context(seed=0, dataset=data))


def test_eml_fits_one_constant_and_prints_it_exactly():
    space = space_for(np.exp(X[:, 0]) - 1.2)
    genome = space._with_fit((EML, VAR0, VAR0 + 1))          # eml(x, c0) = exp(x) - ln(c0)
    assert genome[1][0] == pytest.approx(np.exp(1.2), rel=1e-11)
    assert np.max(np.abs(space.predict(genome, X).real - (np.exp(X[:, 0]) - 1.2))) < 1e-10
    assert space.describe(genome) == "exp(x) - 6/5"
    assert "return math.exp(x) - 6/5" in space.emit(genome, "python")
    assert "return exp(x) - 6.0/5.0;" in space.emit(genome, "c")
    assert space.emit(genome, "eml").startswith("eml(x, 3.32011692")


def test_unused_slots_keep_their_values_and_a_tree_without_slots_is_plain_eml():
    space = space_for(np.exp(X[:, 0]))
    genome = space._with_fit((EML, VAR0, ONE))
    assert genome[1] == (1.5, 1.5)
    assert space.describe(genome) == "exp(x)"
    assert space.key(genome) == "0,2,1|"


def test_variation_stays_within_the_slots_and_refits():
    space = space_for(np.exp(X[:, 0]) - 1.2)
    rng = np.random.default_rng(3)
    genome = space.random(rng)
    for _ in range(8):
        genome = space.mutate(genome, rng)
        tree, constants = genome
        assert all(code < VAR0 + 1 + 2 for code in tree) and len(constants) == 2


def test_too_many_slots_is_a_user_error():
    with pytest.raises(UserError, match="space.constants: 9 is out of range; use 0..8"):
        space_for(X[:, 0], constants=9)
