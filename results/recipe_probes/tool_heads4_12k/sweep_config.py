# configs/sweep_cpu.py's tool point at 1,000 trained people (width 32, 49,824 params) with 4 heads of 8 instead of 2 of
# 16 and 12,000 steps of 32 dialogs instead of 8,000 (the cosine stretched). Each change alone brought the held-out mean
# over three seeds from 94.3% to 94.9% (4 heads: ../tool_heads) and 94.8% (16,000 steps: ../tool_seeds). Planned for
# seeds 0-2 at 1,000 / 2,000 / 4,000 trained people; stopped after seeds 0 and 1 at 1,000 (NOTES.md). From the
# repository root:
#   python sweep.py results/recipe_probes/tool_heads4_12k/sweep_config.py
exec(open('configs/sweep_cpu.py').read())   # with_tool, base, options
out_root = 'results/recipe_probes/tool_heads4_12k'
grid = dict(arch=['transformer'], n_people=[1250], n_embd=[32], **with_tool | dict(n_head=[4], max_iters=[12000]),
            seed=[0, 1])
