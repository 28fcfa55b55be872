"""Search spaces. To add one: write a module with a `search.protocols.Space` subclass and add one line here.

Entries are "module:Class" strings so that a space's heavy imports (torch, transformers) load only when used.
"""

REGISTRY: dict[str, str] = {
    "megakernel": "spaces.megakernel.space:MegakernelSpace",
    "megakernel_stream": "spaces.megakernel.stream_space:StreamKernelSpace",
    "transformer_shapes": "spaces.architecture.shapes:TransformerShapeSpace",
    "eml": "spaces.eml.space:EmlSpace",
    "eml_constants": "spaces.eml.constants:EmlConstantsSpace",
    "optree": "spaces.optree:OpTreeSpace",
    "sr": "spaces.sr:SrSpace",
    "bitstring": "spaces.bitstring:BitStringSpace",
    "float32": "spaces.float32.space:Float32Space",
    "float32_structure": "spaces.float32.structure_space:Float32StructureSpace",
}
