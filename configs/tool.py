# Tool learning: QA of 800 people answered through SQL, 200 held out, 100 with unseen first names.
# Targets (2 CPU cores, < 10 min): recall >= 99% trained, >= 95% held out and unseen.
out_dir = 'out/tool'
tool = True
mix_qa_tool = 1.0
mix_qa = 0.0
n_people = 1000
held_out = 0.2
max_iters = 1500
