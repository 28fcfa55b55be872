"""Objectives (fitness evaluators). To add one: write a module with a `search.protocols.Objective` subclass and add
one line here. Entries are "module:Class" strings so heavy imports load only when used.
"""

REGISTRY: dict[str, str] = {
    "schedule_validator": "objectives.schedule_validator:ScheduleValidator",
    "makespan": "objectives.makespan:Makespan",
    "decode_time": "objectives.decode_time:DecodeTime",
    "model_size": "objectives.model_size:ModelSize",
    "gflops": "objectives.gflops:GFlops",
    "distillation": "objectives.distillation:Distillation",
    "fit": "objectives.fit:FitObjective",
    "size": "objectives.size:SizeObjective",
    "onemax": "objectives.bit_problems:OneMax",
    "trap": "objectives.bit_problems:Trap",
    "ulp": "objectives.ulp:UlpObjective",
    "ops": "objectives.op_count:OpCountObjective",
    "throughput": "objectives.throughput:Throughput",
    "latency": "objectives.latency:Latency",
}
