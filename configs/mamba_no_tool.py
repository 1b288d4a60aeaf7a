# configs/no_tool.py with a Mamba backbone of about the same size (2 layers, width 88: ~163K parameters).
# Mamba's selective scan runs ~4x slower per token than this Transformer on CPU (the torch backend),
# so for < 15 min on 2 cores it gets fewer steps: 800 of 8 x 512 tokens (as measured in the README).
import os
exec(open(os.path.join(os.path.dirname(__file__), 'no_tool.py')).read())
out_dir = 'out/mamba_no_tool'
arch = 'mamba'
n_embd = 88
block_size = 512
max_iters = 800
eval_interval = 400
