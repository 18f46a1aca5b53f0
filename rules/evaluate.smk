# Evaluation: predictions + trainIds -> results/{backend}/result.json (+ result.txt, the guide's
# format), the configured backend's copied to results/result.json, and the backend comparison.

for backend in get_compared_backends():
    if backend_precision(backend) != PRECISION:
        print(
            f"note: compared backend {backend} has no precision {PRECISION}: it runs "
            f"{backend_precision(backend)} (the comparison's inference_precision column)",
            file=sys.stderr,
        )


rule evaluate:
    input:
        predictions=get_evaluate_predictions,
        labels=get_train_ids_files(),
        summary=PLAN.summary("{backend}"),
        model=get_infer_model,
        checkpoint=CHECKPOINT,
        model_reports=get_model_report_files,
    output:
        json=PLAN.result("{backend}"),
        text=PLAN.result_text("{backend}"),
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
        result_path=lambda wildcards, output: str(Path(output.json).with_suffix("")),
        shape=list(INPUT_SHAPE),
        # dataset labels replaced under their names, whatever their mtime, are evaluated again
        sources=get_source_fingerprint(get_dataset_train_ids_files()),
        run_config=lambda wildcards: get_run_config_json(wildcards.backend),
        dataset=lambda wildcards: get_dataset_json(),
        synthetic_flags=get_synthetic_note(),
        model_report_flags=get_model_report_args,
        script=script("evaluate.py"),
    shell:
        "python {params.script:q} --predictions {input.predictions:q} --labels {input.labels:q}"
        " --result_path {params.result_path:q} --shape {params.shape:q}"
        " --summary {input.summary:q} --backend {wildcards.backend:q} --model-file {input.model:q}"
        " --checkpoint {input.checkpoint:q} --dataset {params.dataset:q}"
        " --run-config {params.run_config:q} {params.synthetic_flags} {params.model_report_flags} > {log:q} 2>&1"


rule result:
    input:
        json=PLAN.result(BACKEND),
        text=PLAN.result_text(BACKEND),
        verification=get_verification(),
        # drawn with it, so that `snakemake --report` works after `snakemake results/result.json`
        figures=get_report_figures(),
    output:
        json="results/result.json",
        text="results/result.txt",
    log:
        artifacts.RESULT.log,
    localrule: True
    conda:
        "../envs/deeplabv3.yaml"
    params:
        expect_flags=get_expect_args(),
        script=script("select_result.py"),
    shell:
        "python {params.script:q} {input.json:q} {output.json:q} {params.expect_flags} > {log:q} 2>&1"


rule compare:
    input:
        reference=PLAN.result(config["compare"]["reference"]),
        results=get_compared_results(),
        # read through the paths each result.json records; declared so that they are tracked
        predictions=get_compared_predictions(),
        verification=get_verification(
            [
                (backend, backend_precision(backend))
                for backend in get_compared_backends()
            ]
        ),
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
        "python {params.compare:q} --reference {input.reference:q} --results {input.results:q}"
        " --output {params.output:q} > {log:q} 2>&1"
        " && python {params.report:q} backends --compare {output.json:q} --output {output.figure:q} >> {log:q} 2>&1"
        " && cat {log:q}"
