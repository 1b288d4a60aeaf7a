# Below ../tool_small_mlp's 31,392: width 32, two heads, SwiGLU hidden 8 (26,784 params), 16,000 steps at 2,000 trained
# people (the recipe of ../tool_small_mlp_16k), seeds 0 / 1. From the repository root:
#   python sweep.py results/recipe_probes/tool_mlp8/sweep_config.py
exec(open('configs/sweep_cpu.py').read())   # with_tool, base, options
out_root = 'results/recipe_probes/tool_mlp8'
grid = dict(arch=['transformer'], n_people=[2500], n_embd=[32], mlp_hidden=[8], **with_tool | dict(max_iters=[16000]),
            seed=[0, 1])
