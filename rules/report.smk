# Report: figures and tables of the configured cell's result under results/report/ (the default
# target builds them; matrix.png comes with results/matrix.json, rule matrix).
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
            "results/report/per_class_iou.png",
            caption="../report/per_class_iou.rst",
            category="Accuracy",
            labels={"figure": "per-class IoU", "cell": CELL.name},
        ),
        confusion=report(
            "results/report/confusion_matrix.png",
            caption="../report/confusion_matrix.rst",
            category="Accuracy",
            labels={"figure": "confusion matrix", "cell": CELL.name},
        ),
        summary=report(
            "results/report/summary.html",
            caption="../report/summary.rst",
            category="Accuracy",
            labels={"figure": "summary table", "cell": CELL.name},
        ),
        examples=report(
            "results/report/examples.png",
            caption="../report/examples.rst",
            category="Examples",
            labels={"figure": "lowest and highest mIoU frames", "cell": CELL.name},
        ),
        runtimes=report(
            "results/report/runtimes.png",
            caption="../report/runtimes.rst",
            category="Runtime",
            labels={"figure": "time and memory per job", "cell": CELL.name},
        ),
        markdown="results/report/summary.md",
    log:
        artifacts.REPORT_FIGURES.log,
    benchmark:
        artifacts.REPORT_FIGURES.benchmark
    conda:
        "../envs/deeplabv3.yaml"
    params:
        outdir=get_report_folder,
        script=script("report.py"),
    shell:
        "python {params.script:q} figures --result {input.result:q} --images {input.images:q}"
        " --labels {input.labels:q} --predictions {input.predictions:q}"
        " --benchmarks {input.benchmarks:q} --outdir {params.outdir:q} > {log:q} 2>&1"
