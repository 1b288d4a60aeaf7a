# Width 28 (40,012 params, two heads of 14) at 4,000 trained people with init N(0, 1/fan_in) instead of GPT-2's
# N(0, 0.02), which at width 28 starts every layer ~5x smaller (attention near uniform at the start): configs/
# sweep_cpu.py's tool recipe otherwise (8,000 steps of 32 dialogs, lr 3e-3 cosine to 3e-4, weight decay 0.3), the two
# seeds that never learn the skill with GPT-2's init (../tool_w28). From the repository root:
#   python sweep.py results/recipe_probes/tool_w28_fan_in/sweep_config.py
exec(open('configs/sweep_cpu.py').read())   # with_tool, base, options
out_root = 'results/recipe_probes/tool_w28_fan_in'
grid = [dict(arch=['transformer'], n_people=[5000], n_embd=[28], init=['fan_in'], **with_tool, seed=[0, 1])]
