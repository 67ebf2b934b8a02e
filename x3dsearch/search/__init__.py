"""The X3D progressive expansion search (Feichtenhofer, CVPR 2020, Sec. 3).

``expand(settings, resources, run_dir)`` runs a search; ``resume(run_dir)``
continues one. The space is data (:mod:`.space`), proposals solve each axis's
multiplier under the discreteness (:mod:`.proposals`), trials run through Ray
Tune (:mod:`.runner`), and the state survives ``kill -9`` (:mod:`.state`).
"""
from .controller import Resources, SearchOutcome, SearchSettings, expand, resume
from .proposals import Proposal, Skip, contract, propose, propose_step
from .space import Axis, SearchSpace, load_space

__all__ = ["Axis", "Proposal", "Resources", "SearchOutcome", "SearchSettings", "SearchSpace", "Skip", "contract",
           "expand", "load_space", "propose", "propose_step", "resume"]
