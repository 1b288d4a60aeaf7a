# Tool learning: QA of 800 people answered through SQL, 200 held out, 100 with unseen first names.
# A 2-layer, width-64 Transformer (165K parameters). Target (2 CPU cores, < 10 min): recall >= 99%
# on trained people, >= 95% on held-out people and unseen names; measured: 99.8 / 96.9 / 97.3% in 8.4 min.
out_dir = 'out/tool'
tool = True
mix_qa_tool = 1.0
mix_qa = 0.0
n_people = 1000
held_out = 0.2
n_unseen = 100
n_head = 2              # heads of width 32 copy names better than 4 of 16 (and run faster here)
weight_decay = 0.3      # against memorizing the 800 names instead of learning to copy any name
learning_rate = 3e-3
max_iters = 4000        # ~28 epochs of 3200 dialogs
eval_interval = 100000  # no evaluation before the final one: it costs steps of the 10-minute budget
