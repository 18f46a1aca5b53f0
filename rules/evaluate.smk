# Evaluation, per cell: predictions + trainIds -> results/cells/{data}/{model}/{variant}/result.json
# (+ result.txt, the guide's format); the configured cell's copied to results/result.json; and the
# validation matrix: every model x variant of config `matrix` in results/matrix.json/.csv/.md.


for cell in PLAN.cells:

    rule:
        name:
            cell_rule_name("evaluate", cell)
        input:
            predictions=get_evaluate_predictions(cell),
            labels=get_train_ids_files(),
            summary=PLAN.summary(cell),
            model=PLAN.model_file(cell),
            checkpoint=PLAN.checkpoint(cell.model),
            model_records=get_model_record_files(cell),
        output:
            json=PLAN.result(cell),
            text=PLAN.result_text(cell),
        log:
            PLAN.step(artifacts.EVALUATE, cell).log,
        benchmark:
            PLAN.step(artifacts.EVALUATE, cell).benchmark
        group:
            cell_rule_name("metrics", cell)
        conda:
            "../envs/deeplabv3.yaml"
        resources:
            **stage_resources("default"),
        params:
            result_path=lambda wildcards, output: str(Path(output.json).with_suffix("")),
            shape=list(INPUT_SHAPE),
            # dataset labels replaced under their names, whatever their mtime, are evaluated again
            sources=get_dataset_train_ids_fingerprint(),
            run_config=get_run_config_json(cell),
            dataset=lambda wildcards: get_dataset_json(),
            model_name=cell.model,
            variant=cell.variant.name,
            backend=cell.backend,
            synthetic_flags=get_synthetic_note(cell),
            model_record_flags=get_model_record_args(cell),
            script=script("evaluate.py"),
        shell:
            "python {params.script:q} --predictions {input.predictions:q} --labels {input.labels:q}"
            " --result_path {params.result_path:q} --shape {params.shape:q}"
            " --summary {input.summary:q} --backend {params.backend:q} --model-file {input.model:q}"
            " --model-name {params.model_name:q} --variant {params.variant:q}"
            " --checkpoint {input.checkpoint:q} --dataset {params.dataset:q}"
            " --run-config {params.run_config:q} {params.synthetic_flags} {params.model_record_flags} > {log:q} 2>&1"


rule result:
    input:
        json=PLAN.result(CELL),
        text=PLAN.result_text(CELL),
        verification=get_verification([CELL]),
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


rule matrix:
    input:
        results=get_matrix_results(),
        # read through the paths each result.json records; declared so that they are tracked
        predictions=get_matrix_predictions(),
        verification=get_verification(PLAN.matrix_cells),
    output:
        json=artifacts.MATRIX.output,
        csv="results/matrix.csv",
        markdown="results/matrix.md",
        figure=report(
            "results/report/matrix.png",
            caption="../report/matrix.rst",
            category="Matrix",
            labels=get_stamp_labels(
                {"figure": "validation matrix"},
                artifacts.MATRIX.output,
                get_matrix_stamp,
                "snakemake --cores all results/matrix.json",
            ),
        ),
    log:
        artifacts.MATRIX.log,
    conda:
        "../envs/deeplabv3.yaml"
    resources:
        **stage_resources("default"),
    params:
        output=lambda wildcards, output: str(Path(output.json).with_suffix("")),
        reference=PLAN.matrix_cells[0].variant.name,
        gate=get_gate_args(),
        matrix=script("matrix.py"),
        report=script("report.py"),
    shell:
        "python {params.matrix:q} --results {input.results:q} --reference {params.reference:q}"
        " {params.gate} --output {params.output:q} > {log:q} 2>&1"
        " && python {params.report:q} matrix --matrix {output.json:q} --output {output.figure:q} >> {log:q} 2>&1"
        " && cat {output.markdown:q}"
