# The grid's tool run at 4,000 trained people (width 32, 49,824 params) with 16,000 steps instead of 8,000 (32
# exposures per fact instead of 16), four seeds, with the C++ step of 2026-12-07 evening: at 8,000 steps its seeds
# end 93.5-100% on unseen people (../tool_seeds_kernel_v2/NOTES.md), too close to 95% for one seed to read. From the
# repository root (~14 min on 2 cores):
#   python sweep.py results/recipe_probes/tool_4000_people_16k/sweep_config.py
exec(open('configs/sweep_cpu.py').read())   # base, options, with_tool
out_root = 'results/recipe_probes/tool_4000_people_16k'
grid = [dict(arch=['transformer'], n_people=[5000], n_embd=[32], **with_tool) | dict(max_iters=[16000], seed=[0, 1, 2, 3])]
