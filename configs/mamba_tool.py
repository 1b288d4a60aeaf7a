# configs/tool.py with a Mamba backbone of about the same size (2 layers, width 88: ~163K parameters), on rows of
# one dialog each (no state to carry across documents, no regrouping) with the compiled CPU selective scan.
import os
exec(open(os.path.join(os.path.dirname(__file__), 'tool.py')).read())
out_dir = 'out/mamba_tool'
arch = 'mamba'
n_embd = 88
one_per_row = True
batch_size = 32         # ~5K tokens a step, about configs/tool.py's 8 x 512 rows
max_iters = 4000
