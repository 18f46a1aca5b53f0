# Evaluation: predictions + trainIds -> results/{backend}/result.json (+ result.txt, the guide's format).


rule evaluate:
    input:
        predictions=all_predictions,
        labels=train_ids_files(),
        summary="results/infer/{backend}/summary.json",
        model=infer_model,
        quantization=quantization_report,
        winograd=winograd_report,
    output:
        json="results/{backend}/result.json",
        text="results/{backend}/result.txt",
    log:
        "results/logs/evaluate/{backend}.log",
    benchmark:
        "results/benchmarks/evaluate/{backend}.tsv"
    wildcard_constraints:
        backend="onnxruntime|openvino|pytorch|tensorrt|ascend",
    conda:
        "../envs/deeplabv3.yaml"
    resources:
        **stage_resources("default"),
    params:
        gt_path=gt_folders(),
        run_config=run_config_json(),
        synthetic=synthetic_note(),
        script=script("evaluate.py"),
    shell:
        "python {params.script} --output_path results/infer/{wildcards.backend}"
        " --gt_path {params.gt_path} --result_path results/{wildcards.backend}/result"
        " --summary {input.summary} --backend {wildcards.backend} --model-file {input.model}"
        " --run-config {params.run_config:q} {params.synthetic}"
        " --quantization {input.quantization} --winograd {input.winograd} > {log} 2>&1"


rule result:
    input:
        json=f"results/{BACKEND}/result.json",
        text=f"results/{BACKEND}/result.txt",
    output:
        json="results/result.json",
        text="results/result.txt",
    log:
        "results/logs/result.log",
    localrule: True
    conda:
        "../envs/deeplabv3.yaml"
    params:
        expect=expect_args(),
        script=script("select_result.py"),
    shell:
        "python {params.script} {input.json} {output.json} {params.expect} > {log} 2>&1"


rule compare:
    input:
        results=compared_results(),
        predictions=compared_predictions(),
    output:
        json="results/compare.json",
        csv="results/compare.csv",
    log:
        "results/logs/compare.log",
    conda:
        "../envs/deeplabv3.yaml"
    resources:
        **stage_resources("default"),
    params:
        reference=config["compare"]["reference"],
        backends=config["compare"]["backends"],
        script=script("compare.py"),
    shell:
        "python {params.script} --reference {params.reference} --backends {params.backends}"
        " --results results --output results/compare > {log} 2>&1 && cat {log}"
