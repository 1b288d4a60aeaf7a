# The tool needs a copying circuit, not memory: does the grid's tool model keep its line with a quarter of the MLP?
# Width 32, two heads, SwiGLU hidden 32 instead of 128 (31,392 params instead of 49,824; inside the reference's
# 22-32K), the grid's tool recipe otherwise: 8,000 steps of 32 dialogs at 2,000 and 4,000 trained people, 16,000 at
# 8,000 (as ../tool_8000_people), lr 3e-3 cosine to 3e-4, weight decay 0.3. Seeds 0 / 1 / 2. From the repository root:
#   python sweep.py results/recipe_probes/tool_small_mlp/sweep_config.py
exec(open('configs/sweep_cpu.py').read())   # with_tool, base, options
out_root = 'results/recipe_probes/tool_small_mlp'
small_mlp = lambda n_people, steps: dict(arch=['transformer'], n_people=[n_people], n_embd=[32], mlp_hidden=[32],
                                         **with_tool | dict(max_iters=[steps]), seed=[0, 1, 2])
grid = [small_mlp(10000, 16000), small_mlp(5000, 8000), small_mlp(2500, 8000)]   # longest first
