# Tool learning: QA of 800 people answered through SQL, 200 held out, 100 with unseen first names.
# A 2-layer, width-64 Transformer (165K parameters). Target (2 CPU cores, < 10 min): recall >= 99%
# on trained people, >= 95% on held-out people and unseen names.
out_dir = 'out/tool'
tool = True
mix_qa_tool = 1.0
mix_qa = 0.0
n_people = 1000
held_out = 0.2
n_unseen = 100
learning_rate = 3e-3
max_iters = 3000        # ~24 epochs of 3200 dialogs
eval_interval = 1000
