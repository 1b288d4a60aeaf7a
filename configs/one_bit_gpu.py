# The milestone's 1 bit/param counted by recall (facts answered right x 10.26 bits / params), sized for one GPU:
# width 64 (165,184 params) on 6,438 people (25,752 facts = 1.6 bits/param if every fact were recalled; 62.5% recall
# passes 1), lr 2.5e-3 (width 64's best) cosine to 0, 128 one-dialog rows a step, no weight decay, 600 exposures
# per fact; bits held (loss) and recall on 300 trained questions logged every 50 exposures. On this CPU it would take
# ~3 hours of both cores (1.24B tokens); not run (no GPU lent). Checkpointed: the same command resumes. What this
# width did here at a load of 1.25: 58.0% recalled (0.725 bits/param) at 280 exposures; resumed twice, 84.8% (1.06
# bits/param, 1.14 held by the loss) at 637 (results/recipe_probes/pools/NOTES.md, "Continued again"). This config
# is the same test in one cosine.
#     python train.py configs/one_bit_gpu.py
out_dir = 'results/one_bit_gpu'
tool = False
mix_qa = 1.0
mix_qa_tool = 0.0
n_people = 6438
held_out = 0.0
n_unseen = 10
one_per_row = True
block_size = 256
n_layer = 2
n_head = 2
n_embd = 64
batch_size = 128
max_iters = 120_712       # 600 exposures of 25,752 facts, 128 a step
warmup_iters = 100
learning_rate = 2.5e-3    # the best of 1e-2 / 5e-3 / 2.5e-3 / 1.25e-3 at this width (results/recipe_probes/pools)
min_lr = 0.0
weight_decay = 0.0
dtype = 'float32'         # as the CPU probes it extends
eval_interval = 10_059    # 50 exposures
stop_recall = 0.99
eval_max = 300
ckpt_interval = 5_000
