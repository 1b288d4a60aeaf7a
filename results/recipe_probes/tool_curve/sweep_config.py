# configs/sweep_cpu.py's tool point at 1,000 trained people (width 32, 2 heads, 8,000 steps), seeds 0 / 1 / 2, with
# recall measured every 500 steps on 1,000 questions a split (all held-out ones, 400 unseen): does held-out recall
# peak before the end, as more steps (../tool_seeds) and 12,000 steps with 4 heads (../tool_heads4_12k) suggest?
# From the repository root:
#   python sweep.py results/recipe_probes/tool_curve/sweep_config.py
exec(open('configs/sweep_cpu.py').read())   # with_tool, base, options
out_root = 'results/recipe_probes/tool_curve'
grid = dict(arch=['transformer'], n_people=[1250], n_embd=[32], **with_tool | dict(eval_interval=[500]), eval_max=[1000],
            seed=[0, 1, 2])
