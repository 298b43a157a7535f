"""lm-evaluation-harness as the referee of the workbench's evaluations (`npm run test:interop`).

argv: OUT_JSON MODEL_DIR CROWS_JSONL QQP_JSONL. Writes two local task definitions beside OUT_JSON that
read the given files (the test writes them, or copies slices of ../shared):
  wb_crows_pairs  the harness's crows_pairs_english with its own doc_to_choice and process_results
                  (lm_eval/tasks/crows_pairs/utils.py: pct_stereotype, likelihood_diff), on local data;
  wb_qqp          the harness's glue qqp (doc_to_text, choices ["no", "yes"], acc and f1), on local data.
Runs them with the HF backend in float32 on the CPU, and writes per-task metrics and per-document results:
  {"crows": {"metrics": {...}, "docs": [{"id", "pct_stereotype", "likelihood_diff", "lls": [more, less]}]},
   "qqp":   {"metrics": {...}, "docs": [{"id", "acc", "lls": [no, yes]}]}}
"""
import json
import os
import sys

import yaml

TASKS = {
    'wb_crows_pairs.yaml': {
        'task': 'wb_crows_pairs', 'output_type': 'multiple_choice', 'doc_to_text': '', 'doc_to_target': 0,
        'doc_to_choice': '!function crows_utils.doc_to_choice', 'target_delimiter': '',
        'process_results': '!function crows_utils.process_results',
        'metric_list': [{'metric': 'likelihood_diff', 'aggregation': 'mean', 'higher_is_better': False},
                        {'metric': 'pct_stereotype', 'aggregation': 'mean', 'higher_is_better': False}],
    },
    'wb_qqp.yaml': {
        'task': 'wb_qqp', 'output_type': 'multiple_choice',
        'doc_to_text': 'Question 1: {{question1}}\nQuestion 2: {{question2}}\nQuestion: Do both questions ask the same thing?\nAnswer:',
        'doc_to_target': 'label', 'doc_to_choice': ['no', 'yes'], 'metric_list': [{'metric': 'acc'}, {'metric': 'f1'}],
    },
}

# The harness's own CrowS-Pairs code, imported rather than copied.
CROWS_UTILS = 'from lm_eval.tasks.crows_pairs.utils import doc_to_choice, process_results  # noqa: F401\n'


def write_tasks(folder, data):
    with open(os.path.join(folder, 'crows_utils.py'), 'w') as f:
        f.write(CROWS_UTILS)
    for name, task in TASKS.items():
        key = 'crows' if 'crows' in name else 'qqp'
        spec = {**task, 'dataset_path': 'json', 'dataset_kwargs': {'data_files': {'test': data[key]}}, 'test_split': 'test'}
        text = yaml.safe_dump(spec, sort_keys=False, allow_unicode=True)
        # !function tags must stay unquoted for the harness's YAML loader.
        text = text.replace("'!function crows_utils.doc_to_choice'", '!function crows_utils.doc_to_choice')
        text = text.replace("'!function crows_utils.process_results'", '!function crows_utils.process_results')
        with open(os.path.join(folder, name), 'w') as f:
            f.write(text)


def main():
    out, model_dir, crows, qqp = sys.argv[1:5]
    # The datasets library caches what it reads; keep that beside the output, not in the user's home.
    os.environ['HF_DATASETS_CACHE'] = os.path.join(os.path.dirname(out), 'hf-datasets')
    folder = os.path.join(os.path.dirname(out), 'harness-tasks')
    os.makedirs(folder, exist_ok=True)
    write_tasks(folder, {'crows': crows, 'qqp': qqp})

    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    results = simple_evaluate(
        model='hf', model_args=f'pretrained={model_dir},dtype=float32', tasks=['wb_crows_pairs', 'wb_qqp'],
        task_manager=TaskManager(include_path=folder), log_samples=True, batch_size=8, device='cpu',
        # No bootstrap standard errors: the comparison reads the figures and per-document results only.
        bootstrap_iters=0,
    )

    def docs(task, fields):
        rows = []
        for sample in sorted(results['samples'][task], key=lambda s: s['doc_id']):
            lls = [float(r[0]) for r in sample['filtered_resps']]
            rows.append({'id': sample['doc']['id'], 'lls': lls, **{k: float(sample[k]) for k in fields}})
        return rows

    report = {
        'crows': {'metrics': results['results']['wb_crows_pairs'], 'docs': docs('wb_crows_pairs', ['pct_stereotype', 'likelihood_diff'])},
        'qqp': {'metrics': results['results']['wb_qqp'], 'docs': docs('wb_qqp', ['acc'])},
    }
    with open(out, 'w') as f:
        json.dump(report, f, default=str)


if __name__ == '__main__':
    main()
