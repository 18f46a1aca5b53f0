# Evaluation: predictions + trainIds -> results/{backend}/result.json (+ result.txt, the guide's format).


rule evaluate:
    input:
        predictions=all_predictions,
        labels=train_ids_files(),
        summary=f"{INFER_DIR}/{{backend}}/summary.json",
        model=infer_model,
        checkpoint=CHECKPOINT,
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
        run_config=run_config_json(),
        dataset=dataset_json(),
        synthetic=synthetic_note(),
        script=script("evaluate.py"),
    shell:
        "python {params.script} --predictions {input.predictions} --labels {input.labels}"
        " --result_path results/{wildcards.backend}/result"
        " --summary {input.summary} --backend {wildcards.backend} --model-file {input.model}"
        " --checkpoint {input.checkpoint} --dataset {params.dataset:q}"
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
        reference=f"results/{config['compare']['reference']}/result.json",
        results=compared_results(),
        # read through the paths each result.json records; declared so that they are tracked
        predictions=compared_predictions(),
    output:
        json="results/compare.json",
        csv="results/compare.csv",
        figure=report(
            "results/report/backends.png",
            caption="../report/backends.rst",
            category="Backends",
            labels={"figure": "backend comparison"},
        ),
    log:
        "results/logs/compare.log",
    conda:
        "../envs/deeplabv3.yaml"
    resources:
        **stage_resources("default"),
    params:
        output=lambda wildcards, output: str(Path(output.json).with_suffix("")),
        compare=script("compare.py"),
        report=script("report.py"),
    shell:
        "python {params.compare} --reference {input.reference} --results {input.results}"
        " --output {params.output} > {log} 2>&1"
        " && python {params.report} backends --compare {output.json} --output {output.figure} >> {log} 2>&1"
        " && cat {log}"
