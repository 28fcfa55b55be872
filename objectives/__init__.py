"""Objectives (fitness evaluators). To add one: write a module with a `search.protocols.Objective` subclass and add
one line here. Entries are "module:Class" strings so heavy imports load only when used.
"""

REGISTRY: dict[str, str] = {
    "onemax": "objectives.bit_problems:OneMax",
    "trap": "objectives.bit_problems:Trap",
}
