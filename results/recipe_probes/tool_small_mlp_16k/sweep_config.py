# ../tool_small_mlp's model (width 32, two heads, SwiGLU hidden 32: 31,392 params) at 2,000 and 4,000 trained people
# with 16,000 steps instead of the grid's 8,000 (64 / 32 exposures per fact instead of 32 / 16), as 8,000 trained
# people got there; then 1,000 trained people with 16,000 steps (128 exposures per fact). Seeds 0 / 1 / 2. From the repository root:
#   python sweep.py results/recipe_probes/tool_small_mlp_16k/sweep_config.py
exec(open('results/recipe_probes/tool_small_mlp/sweep_config.py').read())   # small_mlp, with_tool, base, options
out_root = 'results/recipe_probes/tool_small_mlp_16k'
grid = [small_mlp(5000, 16000), small_mlp(2500, 16000), small_mlp(1250, 16000)]
