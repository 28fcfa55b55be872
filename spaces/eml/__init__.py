"""The EML space: trees of eml(x, y) = exp(x) - ln(y) and the constant 1 (Odrzywolek, "All elementary functions
from a single binary operator"). tree.py evaluates, compile.py lowers/lifts sympy, gradient.py is the paper's
circuit method, space.py the search space, emit.py the code generator, recovery.py the exact-recovery check."""
