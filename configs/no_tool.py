# In-weight learning: 1000 people x 4 attributes = 4000 facts, answered from the weights.
# A 2-layer, width-64 Transformer (165K parameters). Target (2 CPU cores, < 15 min): >= 95% recall;
# measured: 87.3% in 14.1 min (94 epochs); 30,000 steps: 99.8% in 25.5 min; see the README.
out_dir = 'out/no_tool'
tool = False
mix_qa = 1.0
mix_qa_tool = 0.0
n_people = 1000
held_out = 0.0          # every person's QA is trained on: 4000 facts
n_unseen = 100
n_head = 2              # heads of width 32: ~20% faster here than 4 of 16
block_size = 256        # ~80-token dialogs pack 3 to a row; shorter rows make attention cheaper
learning_rate = 5e-3
min_lr = 5e-4
weight_decay = 0.0      # decay pulls memorized facts back out of the weights
warmup_iters = 200
max_iters = 17000       # ~94 epochs of 4000 dialogs: memorization comes late and suddenly
eval_interval = 100000  # no evaluation before the final one: it costs steps of the 15-minute budget
