"""The load benchmark: many sessions in one room, how fast messages reach them, what the server spends.

`python -m bench.run` measures; see bench/README.md for the method and what each number means.
"""
