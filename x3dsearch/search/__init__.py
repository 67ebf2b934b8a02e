"""The X3D progressive expansion search (Feichtenhofer, CVPR 2020, Sec. 3).

``expand(settings, resources, run_dir)`` runs a search; ``resume(run_dir)``
continues one (:mod:`.session`). The space is data (:mod:`.space`), proposals
solve each axis's multiplier under the discreteness (:mod:`.proposals`), the
loop lives in :mod:`.controller`, trials run through Ray Tune
(:mod:`.trials`, :mod:`.trainable`, :mod:`.cluster`), and the run survives
``kill -9`` (:mod:`x3dsearch.runlog`).
"""
from .session import SearchOutcome, expand, resume
from .cluster import Resources
from .settings import SearchSettings
from .proposals import Proposal, Skip, contract, propose, propose_step
from .space import Axis, SearchSpace, load_space

__all__ = ["Axis", "Proposal", "Resources", "SearchOutcome", "SearchSettings", "SearchSpace", "Skip", "contract",
           "expand", "load_space", "propose", "propose_step", "resume"]
