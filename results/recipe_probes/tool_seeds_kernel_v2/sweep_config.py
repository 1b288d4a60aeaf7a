# The CPU grid's tool line (width 32, 1,000 / 2,000 / 4,000 trained people, 8,000 steps) at seeds 0 / 1 / 2 with the C++
# step of 2026-12-07 evening, whose seed 0 at 4,000 trained people ended two unseen questions under 95%
# (results/sweep_cpu_kernel_v2/run.txt): where does the three seeds' mean fall with this code? Seed 0 here should equal
# sweep_cpu_kernel_v2's to the digit (same code, same seed, CPU). From the repository root (~17 min on 2 cores):
#   python sweep.py results/recipe_probes/tool_seeds_kernel_v2/sweep_config.py
exec(open('configs/sweep_cpu.py').read())   # base, options, with_tool
out_root = 'results/recipe_probes/tool_seeds_kernel_v2'
grid = [dict(arch=['transformer'], n_people=[5000, 2500, 1250], n_embd=[32], **with_tool) | dict(seed=[0, 1, 2])]
