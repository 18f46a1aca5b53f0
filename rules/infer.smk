# Inference: every backend writes results/infer/{backend}/{stem}_0.bin (ais_bench's layout),
# one job per shard, and a summary.json gathered from the shards.

for shard_index in SHARDS:

    rule:
        name:
            rule_name("infer", shard_index)
        input:
            bins=shard_bins(shard_index),
            model=infer_model,
        output:
            predictions=kept(shard_predictions(shard_index), "keep_predictions"),
            summary=f"{INFER_DIR}/{{backend}}/shards/{shard_index}.json",
        log:
            f"results/logs/infer/{{backend}}/shard{shard_index}.log",
        benchmark:
            f"results/benchmarks/infer/{{backend}}/shard{shard_index}.tsv"
        wildcard_constraints:
            backend="onnxruntime|openvino|pytorch|tensorrt|ascend",
        conda:
            "../envs/deeplabv3.yaml"
        threads: job_threads
        resources:
            **stage_resources("infer"),
        params:
            outdir=prediction_folder,
            precision=lambda wildcards: backend_precision(wildcards.backend),
            backend_args=lambda wildcards: backend_args(wildcards.backend),
            warmup=config["warmup"],
            script=script("infer.py"),
        shell:
            "python {params.script} --backend {wildcards.backend} --model {input.model}"
            " --input {input.bins} --output {params.outdir} --outfmt BIN"
            " --summary {output.summary} --precision {params.precision}"
            " --threads {threads} --warmup {params.warmup} {params.backend_args} > {log} 2>&1"


rule gather_summaries:
    input:
        shard_summaries,
    output:
        f"{INFER_DIR}/{{backend}}/summary.json",
    log:
        "results/logs/infer/{backend}/gather_summaries.log",
    conda:
        "../envs/deeplabv3.yaml"
    resources:
        **stage_resources("default"),
    params:
        script=script("gather_summaries.py"),
    shell:
        "python {params.script} {input} --output {output} > {log} 2>&1"
