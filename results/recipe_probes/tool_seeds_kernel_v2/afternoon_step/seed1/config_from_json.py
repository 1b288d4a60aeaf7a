import json as _json
globals().update(_json.load(open('results/recipe_probes/tool_seeds_kernel_v2/archtransformer_n_people5000_n_embd32_toolTrue_seed1/config.json')))
out_dir = '/tmp/wt_out/seed1'
