# Report: figures and tables of the configured cell's result under results/report/{data}/{model}/{variant}/
# (PLAN.report_folder: keyed as the cell; the default target builds them; matrix.png comes with
# results/matrix.json, rule matrix).
# `snakemake --report results/report.html` shows them with the captions of report/*.rst.


report: "../report/workflow.rst"


rule report_figures:
    input:
        images=get_image_files(),
        result=PLAN.result(CELL),
        labels=get_train_ids_files(),
        predictions=PLAN.predictions(CELL),
        benchmarks=get_report_benchmarks(),
    output:
        per_class=report(
            get_report_figure("per_class_iou.png"),
            caption="../report/per_class_iou.rst",
            category="Accuracy",
            labels=get_report_labels("per-class IoU"),
        ),
        confusion=report(
            get_report_figure("confusion_matrix.png"),
            caption="../report/confusion_matrix.rst",
            category="Accuracy",
            labels=get_report_labels("confusion matrix"),
        ),
        summary=report(
            get_report_figure("summary.html"),
            caption="../report/summary.rst",
            category="Accuracy",
            labels=get_report_labels("summary table"),
        ),
        examples=report(
            get_report_figure("examples.png"),
            caption="../report/examples.rst",
            category="Examples",
            labels=get_report_labels("lowest and highest mIoU frames"),
        ),
        runtimes=report(
            get_report_figure("runtimes.png"),
            caption="../report/runtimes.rst",
            category="Runtime",
            labels=get_report_labels("time and memory per job"),
        ),
        markdown=get_report_figure("summary.md"),
        stamp=get_report_figure(STAMP_FILE),
    log:
        PLAN.step(artifacts.REPORT_FIGURES, CELL).log,
    benchmark:
        PLAN.step(artifacts.REPORT_FIGURES, CELL).benchmark
    conda:
        "../envs/deeplabv3.yaml"
    params:
        outdir=get_report_folder,
        script=script("report.py"),
    shell:
        "python {params.script:q} figures --result {input.result:q} --images {input.images:q}"
        " --labels {input.labels:q} --predictions {input.predictions:q}"
        " --benchmarks {input.benchmarks:q} --outdir {params.outdir:q} > {log:q} 2>&1"
