# Report: figures and tables of the configured backend's result under results/report/, and
# backends.png of results/compare.json. `snakemake --report results/report.html` shows them
# with the captions of report/*.rst.


report: "../report/workflow.rst"


rule report_figures:
    input:
        # images first: params.images is the folder of input[0] (leftImg8bit/<split>)
        images=[str(frame.image(DATASET_ROOT, SPLIT)) for frame in FRAMES],
        result=f"results/{BACKEND}/result.json",
        labels=train_ids_files(),
        predictions=[
            path.format(backend=BACKEND)
            for index in SHARDS
            for path in shard_predictions(index)
        ],
        benchmarks=report_benchmarks(),
    output:
        per_class=report(
            "results/report/per_class_iou.png",
            caption="../report/per_class_iou.rst",
            category="Accuracy",
            labels={"figure": "per-class IoU", "backend": BACKEND},
        ),
        confusion=report(
            "results/report/confusion_matrix.png",
            caption="../report/confusion_matrix.rst",
            category="Accuracy",
            labels={"figure": "confusion matrix", "backend": BACKEND},
        ),
        summary=report(
            "results/report/summary.html",
            caption="../report/summary.rst",
            category="Accuracy",
            labels={"figure": "summary table", "backend": BACKEND},
        ),
        examples=report(
            "results/report/examples.png",
            caption="../report/examples.rst",
            category="Examples",
            labels={"figure": "lowest and highest mIoU frames", "backend": BACKEND},
        ),
        runtimes=report(
            "results/report/runtimes.png",
            caption="../report/runtimes.rst",
            category="Runtime",
            labels={"figure": "time and memory per job", "backend": BACKEND},
        ),
        markdown="results/report/summary.md",
    log:
        "results/logs/report_figures.log",
    benchmark:
        "results/benchmarks/report_figures.tsv"
    conda:
        "../envs/deeplabv3.yaml"
    params:
        images=dataset_folder,
        labels=gt_folders(),
        predictions=predictions_folder,
        outdir=report_folder,
        script=script("report.py"),
    shell:
        "python {params.script} figures --result {input.result} --images {params.images}"
        " --labels {params.labels} --predictions {params.predictions}"
        " --benchmarks {input.benchmarks} --outdir {params.outdir} > {log} 2>&1"


rule report_backends:
    input:
        "results/compare.json",
    output:
        report(
            "results/report/backends.png",
            caption="../report/backends.rst",
            category="Backends",
            labels={"figure": "backend comparison"},
        ),
    log:
        "results/logs/report_backends.log",
    localrule: True
    conda:
        "../envs/deeplabv3.yaml"
    params:
        script=script("report.py"),
    shell:
        "python {params.script} backends --compare {input} --output {output} > {log} 2>&1"
