"""Megakernel schedules: IR, lowering, ground-truth explorer, CPU executor, cost model, search space, CUDA emitter."""
