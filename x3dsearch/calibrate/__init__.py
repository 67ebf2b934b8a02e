"""``x3dsearch calibrate``: how far can the search's proxy be trusted?

Trains a fixed set of architectures with the proxy budget at several seeds and
with a longer reference budget, through the same Ray runner as the search
(parallel, resumable, the same live table), then reports per criterion the
seed spread of the proxy's scores and the rank correlation of its ranking with
the reference's (``calibration.yaml``, ``calibration.png`` and a table).
"""
from .run import CalibrationSettings, calibrate

__all__ = ["CalibrationSettings", "calibrate"]
