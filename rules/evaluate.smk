# Evaluation: predictions + trainIds -> results/{backend}/result.json (+ result.txt, the guide's format).


rule evaluate:
    input:
        predictions=all_predictions,
        labels=train_ids_files(),
        summary="results/infer/{backend}/summary.json",
        model=infer_model,
    output:
        json="results/{backend}/result.json",
        text="results/{backend}/result.txt",
    params:
        gt_path=gt_folders(),
        run_config=run_config_json(),
        synthetic=synthetic_note(),
    log:
        "results/logs/evaluate/{backend}.log",
    benchmark:
        "results/benchmarks/evaluate/{backend}.tsv"
    wildcard_constraints:
        backend="onnxruntime|openvino|pytorch|tensorrt|ascend",
    shell:
        "{PYTHON} {SCRIPTS}/evaluate.py --output_path results/infer/{wildcards.backend}"
        " --gt_path {params.gt_path} --result_path results/{wildcards.backend}/result"
        " --summary {input.summary} --backend {wildcards.backend} --model-file {input.model}"
        " --run-config {params.run_config:q} {params.synthetic} > {log} 2>&1"


rule result:
    input:
        json=f"results/{BACKEND}/result.json",
        text=f"results/{BACKEND}/result.txt",
    output:
        json="results/result.json",
        text="results/result.txt",
    localrule: True
    shell:
        "cp {input.json} {output.json} && cp {input.text} {output.text}"
