# configs/tool.py with a Mamba backbone of about the same size (2 layers, width 88: ~163K parameters).
# Mamba's selective scan runs ~4x slower per token than this Transformer on CPU (the torch backend),
# so for < 15 min on 2 cores it gets fewer steps: 800 instead of 4000.
import os
exec(open(os.path.join(os.path.dirname(__file__), 'tool.py')).read())
out_dir = 'out/mamba_tool'
arch = 'mamba'
n_embd = 88
max_iters = 800
eval_interval = 400
