# configs/no_tool.py with a Mamba backbone of about the same size (2 layers, width 88: ~163K parameters), on rows of
# one dialog each with the compiled CPU selective scan: 16 dialogs a step (no_tool.py's 6 x 256 rows hold ~18),
# at most ~100 epochs of the 4000 dialogs. Target (2 CPU cores, < 15 min): >= 95% of the 4000 facts.
# Memorization comes late and suddenly: 2 / 24 / 83 / 96% of 300 trained questions at steps 10,000 / 15,000 /
# 20,000 / 22,500 in a 1-thread trial (results/mamba_trials/NOTES.md).
import os
exec(open(os.path.join(os.path.dirname(__file__), 'no_tool.py')).read())
out_dir = 'out/mamba_no_tool'
arch = 'mamba'
n_embd = 88
one_per_row = True
batch_size = 16
max_iters = 25000
stop_recall = 0.95      # ... or fewer, once 95% of 300 trained questions, then of all, are right (every 2,500 steps)
eval_interval = 2500
