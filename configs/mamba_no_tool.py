# configs/no_tool.py with a Mamba backbone of about the same size (2 layers, width 88: ~163K parameters).
import os
exec(open(os.path.join(os.path.dirname(__file__), 'no_tool.py')).read())
out_dir = 'out/mamba_no_tool'
arch = 'mamba'
n_embd = 88
