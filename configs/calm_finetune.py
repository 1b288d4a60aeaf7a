# CALM experiment, baseline: the anchor fine-tuned on the same QA (20% of P) with the composition's budget.
out_dir = 'out/calm_experiment/finetuned_anchor'
init_from = 'out/calm_experiment/anchor'
data_dir = 'out/calm_experiment/data_P'
n_people = 200          # the data options of configs/calm_augment.py
held_out = 0.8
n_unseen = 0
bios_per_person = 16
tool = False
mix_qa = 1.0
mix_qa_tool = 0.0
max_iters = 600
n_layer = 3             # the anchor's (configs/calm_anchor.py)
warmup_iters = 60
n_head = 4              # the recipe these stages were measured with (train.py's defaults are configs/tool.py's)
weight_decay = 0.1
eval_interval = 100000
