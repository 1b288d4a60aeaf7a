# Below ../tool_small_mlp's 31,392: width 32, two heads, SwiGLU hidden 8 (26,784 params), 16,000 steps (the recipe of
# ../tool_small_mlp_16k) at 2,000 trained people, seeds 0 / 1, then at 1,000 (where held-out people are hardest),
# seeds 0 / 1 / 2, one run at a time (a run of another probe on the other core). From the repository root:
#   python sweep.py results/recipe_probes/tool_mlp8/sweep_config.py
exec(open('configs/sweep_cpu.py').read())   # with_tool, base, options
out_root = 'results/recipe_probes/tool_mlp8'
options = dict(options, max_parallel=1)
mlp8 = lambda n_people, seeds: dict(arch=['transformer'], n_people=[n_people], n_embd=[32], mlp_hidden=[8],
                                    **with_tool | dict(max_iters=[16000]), seed=seeds)
grid = [mlp8(1250, [0, 1, 2]), mlp8(2500, [0, 1])]
