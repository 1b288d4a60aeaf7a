# CALM experiment, stage 1: the augment memorizes the biographies of people P (several paraphrases each)
# and never sees a question. Its final evaluation is "the augment alone, asked P's questions".
# `python calm.py experiment` runs all stages; the data options here are shared by configs/calm.py.
out_dir = 'out/calm_experiment/augment'
data_dir = 'out/calm_experiment/data_P'
n_people = 400          # P
held_out = 0.8          # the composition trains on the QA of 20% of P and is evaluated on the other 80%
n_unseen = 0
bios_per_person = 8
tool = False
mix_bios = 1.0
bios_splits = 'train,held_out'
mix_qa = 0.0
mix_qa_tool = 0.0
max_iters = 2500
eval_interval = 100000  # no QA evaluation during training: it never saw QA
