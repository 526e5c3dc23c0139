"""Math tasks for cookbook: procedural arithmetic, word problems (`#### answer`) and competition
problems (`\\boxed{}`) from local files, with a grader that never executes model output.

Importing this package is cheap; the heavy halves (sympy, math-verify, tinker) load on use.
"""
