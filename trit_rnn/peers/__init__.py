"""The models a user would otherwise pick, wrapped to the registry's calling convention
(input [T, B, I] -> (output [T, B, *], state)): used by the benchmark harness and training command
as the baselines the library's cells are measured against."""
