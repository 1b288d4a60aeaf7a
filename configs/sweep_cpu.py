# The capacity grid sized for 2 CPU cores (38-52 min, as the machine's speed varies). `python sweep.py configs/sweep_cpu.py`
# (finished runs are skipped). 2-layer models; recall is measured on the people trained on.
#  - in weights: Transformers of width 16..64 on 50..400 people (160..1280 facts), 1500 steps of 8 x 256 tokens
#    (the ~80-token QA dialogs pack 3 to a row; rows of 256 ran ~1.2x faster than rows of 4 x 512 here);
#  - with the tool: widths 32 and 64 on 1000 people, 32 on 2000 people, with configs/tool.py's first recipe (four
#    heads, weight decay 0.1, 3000 steps of 8 x 512 tokens: ~160-token tool dialogs pack 3 to a row; pinned here so
#    that the grid stays the one measured). The tool skill (copying the name into SQL, the
#    result into the answer) only emerged with >= 800 distinct training names: on <= 400 people the tool
#    models memorized the names instead;
#  - Mamba in weights, widths 16 and 32 on 50 people, width 32 on 200 people.
out_root = 'results/sweep_cpu'
tool_recipe = dict(n_head=[4], block_size=[512], max_iters=[3000], learning_rate=[3e-3], weight_decay=[0.1])
grid = [
    dict(arch=['transformer'], tool=[False], n_people=[50, 100, 200, 400], n_embd=[16, 32, 64]),
    dict(arch=['transformer'], tool=[True], n_people=[1000], n_embd=[32, 64], **tool_recipe),
    dict(arch=['transformer'], tool=[True], n_people=[2000], n_embd=[32], **tool_recipe),
    dict(arch=['mamba'], tool=[False], n_people=[50], n_embd=[16, 32]),
    dict(arch=['mamba'], tool=[False], n_people=[200], n_embd=[32]),
]
base = dict(
    n_layer=2, n_head=2, held_out=0.2, n_unseen=50, seed=0,
    block_size=256, batch_size=8, learning_rate=5e-3, min_lr=5e-4, weight_decay=0.0, warmup_iters=100,
    max_iters=1500, eval_interval=100000, eval_max=200, ckpt_interval=500,
)
