# The milestone's test of 1 bit/param on the default data, sized for one GPU: width 64 (165,184 params) on 4,025
# people (16,100 facts x 10.26 bits = 1.0 bits/param if every fact were recalled), the recipe that filled small
# models fastest per exposure (results/recipe_probes/fill_recipe: 128 one-dialog rows a step, lr cosine to 0, no
# weight decay), a horizon of 1,000 exposures per fact (Allen-Zhu & Li's 2 bits/param regime), bits held (loss) and
# recall on 300 trained questions logged every 50 exposures. On this CPU it would take ~10 core-hours (1.3B tokens);
# not run yet (no GPU was lent to this project). Checkpointed: the same command resumes. What this width did here at
# 0.8 bits/param of load and 390 exposures: 0.58 bits/param held, 50% recalled (results/recipe_probes/pools/NOTES.md).
#     python train.py configs/one_bit_gpu.py
out_dir = 'results/one_bit_gpu'
tool = False
mix_qa = 1.0
mix_qa_tool = 0.0
n_people = 4025
held_out = 0.0
n_unseen = 10
one_per_row = True
block_size = 256
n_layer = 2
n_head = 2
n_embd = 64
batch_size = 128
max_iters = 125_781       # 1,000 exposures of 16,100 facts, 128 a step
warmup_iters = 100
learning_rate = 2.5e-3    # the best of 1e-2 / 5e-3 / 2.5e-3 / 1.25e-3 at this width (results/recipe_probes/pools)
min_lr = 0.0
weight_decay = 0.0
dtype = 'float32'         # as the CPU probes it extends
eval_interval = 6_289     # 50 exposures
stop_recall = 0.99
eval_max = 300
ckpt_interval = 5_000
