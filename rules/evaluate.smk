# Evaluation: predictions + trainIds -> results/{backend}/result.json (+ result.txt, the guide's
# format), the configured backend's copied to results/result.json, and the backend comparison.

# Keys that never change a backend's result.json: leaving them out of evaluate's params
# keeps a change to them (the gate, the comparison, the benchmark, job sizes, what is kept on
# disk, which backend is published) from re-evaluating every backend.
NOT_IN_RESULT = ("backend", "benchmark", "compare", "expect", "resources", "storage")


for backend in get_compared_backends():
    if backend_precision(backend) != PRECISION:
        print(
            f"note: compared backend {backend} has no precision {PRECISION}: it runs "
            f"{backend_precision(backend)} (the comparison's inference_precision column)",
            file=sys.stderr,
        )


rule evaluate:
    input:
        predictions=lambda wildcards: get_predictions(wildcards.backend),
        labels=get_train_ids_files(),
        summary=f"{INFER_DIR}/{{backend}}/summary.json",
        model=get_infer_model,
        checkpoint=CHECKPOINT,
        model_reports=get_model_report_files,
    output:
        json="results/{backend}/result.json",
        text="results/{backend}/result.txt",
    log:
        artifacts.EVALUATE.log,
    benchmark:
        artifacts.EVALUATE.benchmark
    wildcard_constraints:
        backend=BACKEND_PATTERN,
    conda:
        "../envs/deeplabv3.yaml"
    resources:
        **stage_resources("default"),
    params:
        run_config=get_run_config_json(),
        dataset=get_dataset_json(),
        synthetic=get_synthetic_note(),
        model_reports=get_model_report_args,
        script=script("evaluate.py"),
    shell:
        "python {params.script} --predictions {input.predictions} --labels {input.labels}"
        " --result_path results/{wildcards.backend}/result"
        " --summary {input.summary} --backend {wildcards.backend} --model-file {input.model}"
        " --checkpoint {input.checkpoint} --dataset {params.dataset:q}"
        " --run-config {params.run_config:q} {params.synthetic} {params.model_reports} > {log} 2>&1"


rule result:
    input:
        json=f"results/{BACKEND}/result.json",
        text=f"results/{BACKEND}/result.txt",
    output:
        json="results/result.json",
        text="results/result.txt",
    log:
        artifacts.RESULT.log,
    localrule: True
    conda:
        "../envs/deeplabv3.yaml"
    params:
        expect=get_expect_args(),
        script=script("select_result.py"),
    shell:
        "python {params.script} {input.json} {output.json} {params.expect} > {log} 2>&1"


rule compare:
    input:
        reference=f"results/{config['compare']['reference']}/result.json",
        results=get_compared_results(),
        # read through the paths each result.json records; declared so that they are tracked
        predictions=get_compared_predictions(),
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
        artifacts.COMPARE.log,
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
