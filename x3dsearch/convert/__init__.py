"""Load SlowFast and pytorchvideo X3D checkpoints into x3dsearch models, and export them back.

``convert_checkpoint`` writes a converted file; ``load_converted`` rebuilds the
model from it (what ``x3dsearch train --init`` uses); ``export_state_dict``
writes our weights in a source's own layout.
"""
from .files import ConvertedMeta, convert_checkpoint, load_converted, read_state_dict, save_converted
from .layouts import LAYOUTS, SOURCES, SourceLayout, TensorPair, tensor_pairs
from .state import ConversionError, Converted, MappingError, convert_state_dict, export_state_dict

__all__ = [
    "LAYOUTS", "SOURCES", "ConversionError", "Converted", "ConvertedMeta", "MappingError", "SourceLayout",
    "TensorPair", "convert_checkpoint", "convert_state_dict", "export_state_dict", "load_converted",
    "read_state_dict", "save_converted", "tensor_pairs",
]
