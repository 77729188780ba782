"""A Filestore v1 emulator: a real gRPC server the google-cloud-filestore client talks to.

``start_emulator()`` runs it in-process (the driver's ``--cloud emulator``, tests);
``python -m csi.emulator`` runs it alone.
"""

from csi.cloud.emulator.server import start_emulator
from csi.cloud.emulator.state import EmulatorState

__all__ = ["EmulatorState", "start_emulator"]
