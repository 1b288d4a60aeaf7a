# CALM experiment, stage 2: the anchor learns to answer questions, about other people Q (another data_seed).
out_dir = 'out/calm_experiment/anchor'
data_dir = 'out/calm_experiment/data_Q'
n_people = 2000         # Q: many names, so that it learns to copy them, not to memorize them
held_out = 0.0
n_unseen = 0
data_seed = 1
tool = False
mix_qa = 1.0
mix_qa_tool = 0.0
max_iters = 1500
n_layer = 3             # copies names better than 2 layers (6% wrong against 13%; 4 layers: 7%)
n_head = 4              # the recipe these stages were measured with (train.py's defaults are configs/tool.py's)
weight_decay = 0.1
eval_interval = 100000
