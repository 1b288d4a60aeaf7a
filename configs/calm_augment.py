# CALM experiment, stage 1: the augment memorizes the biographies of people P (several paraphrases each)
# and never sees a question. Its final evaluation is "the augment alone, asked P's questions".
# `python calm_experiment.py` runs all stages; the data options here are shared by configs/calm.py.
out_dir = 'out/calm_experiment/augment'
data_dir = 'out/calm_experiment/data_P'
n_people = 200          # P: 800 facts
held_out = 0.8          # the composition trains on the QA of 20% of P and is evaluated on the other 80%
n_unseen = 0
bios_per_person = 16     # each question's wording (one of 5 paraphrases) is seen for ~97% of the facts
tool = False
mix_bios = 1.0
bios_splits = 'train,held_out'
mix_qa = 0.0
mix_qa_tool = 0.0
doc_mask = False        # rows read as plain text: it learns to ignore unrelated text before a fact
learning_rate = 5e-3
min_lr = 5e-4
n_head = 4              # the recipe these stages were measured with
weight_decay = 0.0      # as configs/no_tool.py: decay pulls memorized facts back out of the weights
warmup_iters = 200
max_iters = 6000
eval_interval = 100000  # no QA evaluation during training: it never saw QA
