from runner.compiler import compile_plan as compile_plan
