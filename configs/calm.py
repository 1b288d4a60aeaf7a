# CALM experiment, stage 3: compose the frozen anchor (QA about Q) with the frozen augment (biographies of P),
# training only the cross-attention on the QA of 20% of P; evaluation's held_out split is the other 80%.
#     python train.py configs/calm.py      (after the anchor and augment stages, e.g. by `python calm_experiment.py`)
arch = 'calm'
anchor_dir = 'out/calm_experiment/anchor'
augment_dirs = 'out/calm_experiment/augment'
connect_every = 4
# Not in the paper (README): the anchor reads the augment's next-token distribution, which a linear map
# turns into "push the anchor towards the token the augment predicts" for any person; a learned distance
# penalty makes the augment's prediction at the anchor's own position the easy thing to read; a zero-valued
# slot lets a query read nothing where the augment misleads (e.g. while the anchor copies a name); keys that
# carry only position leave where to read to the anchor (46% -> 57% held-out); a per-token gate (-> 61%).
# Reading the last block's hidden state instead (the paper's connection) memorizes the trained 20%.
calm_read_output = True
calm_position_bias = True
calm_null_slot = True
calm_position_keys = True
calm_gate = True
calm_gate_reads = True   # the gate also sees what was read, e.g. how sure the augment is (79.4% with 300 steps)
calm_answer_mode = True  # the augment reads only the answer, from a fresh start (61% -> 73%; with the 3-layer anchor 78%)
out_dir = 'out/calm_experiment/calm'
data_dir = 'out/calm_experiment/data_P'
n_people = 200          # the data options of configs/calm_augment.py
held_out = 0.8
n_unseen = 0
bios_per_person = 16
tool = False
mix_qa = 1.0
mix_qa_tool = 0.0
max_iters = 600          # 83.0% held-out (300 steps: 79.4%)
warmup_iters = 60
n_head = 4              # the recipe these stages were measured with (train.py's defaults are configs/tool.py's)
weight_decay = 0.1
eval_interval = 100000
