"""When each tool run leaves the loss plateau (the first logged step where the mean of the last five logged training
losses is below 0.2; runs that learn the copying skill fall from ~0.6-0.9 to ~0.01, runs that do not stay above 0.3)
and its recall on trained / held-out / unseen people. From the repository root:
    python results/recipe_probes/tool_plateau/plateau_steps.py run_dir [run_dir ...]
"""
import json
import os
import sys

PLATEAU, WINDOW = 0.2, 5


def left_plateau_at(metrics):
    """-> the first step whose trailing mean loss is below PLATEAU, or None."""
    losses = [m for m in metrics if 'loss' in m and 'step' in m]
    for i, m in enumerate(losses):
        window = [x['loss'] for x in losses[max(0, i - WINDOW + 1):i + 1]]
        if sum(window) / len(window) < PLATEAU:
            return m['step']
    return None


def main(run_dirs):
    for d in run_dirs:
        metrics = [json.loads(line) for line in open(os.path.join(d, 'metrics.jsonl'))]
        results = os.path.join(d, 'results.json')
        recall = json.load(open(results))['recall'] if os.path.exists(results) else {}
        step = left_plateau_at(metrics)
        print(f"{d.rstrip('/')}: {'stays on the plateau' if step is None else f'leaves the plateau at step {step}'}"
              f"; recall {' / '.join(f'{v:.1%}' for v in recall.values()) or 'not measured'}")


if __name__ == '__main__':
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
