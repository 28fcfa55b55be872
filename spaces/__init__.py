"""Search spaces. To add one: write a module with a `search.protocols.Space` subclass and add one line here.

Entries are "module:Class" strings so that a space's heavy imports (torch, transformers) load only when used.
"""

REGISTRY: dict[str, str] = {
    "bitstring": "spaces.bitstring:BitStringSpace",
}
