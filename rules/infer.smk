# Inference: every backend writes results/infer/{data}/{backend}/{stem}_0.bin (ais_bench's layout),
# one job per shard, and a summary.json gathered from the shards. The model a backend runs and the
# flags it needs come from its module (backends/<name>_backend.py), through rules/common.smk.


for shard_index in SHARDS:

    rule:
        name:
            rule_name("infer", shard_index)
        input:
            bins=get_shard_bins(shard_index),
            model=get_infer_model,
            # read by the runtime beside the model (an IR's weights, an engine's build report)
            companions=get_infer_model_companions,
        output:
            predictions=kept(get_shard_predictions(shard_index), "keep_predictions"),
            summary=PLAN.shard_summary("{backend}", shard_index),
        log:
            artifacts.INFER.format(shard=shard_index).log,
        benchmark:
            artifacts.INFER.format(shard=shard_index).benchmark
        wildcard_constraints:
            backend=BACKEND_PATTERN,
        conda:
            "../envs/deeplabv3.yaml"
        threads: job_threads
        resources:
            **stage_resources("infer"),
        params:
            outdir=get_prediction_folder,
            precision=lambda wildcards: backend_precision(wildcards.backend),
            backend_flags=lambda wildcards: get_backend_args(wildcards.backend),
            warmup=config["warmup"],
            script=script("infer.py"),
        shell:
            "python {params.script:q} --backend {wildcards.backend:q} --model {input.model:q}"
            " --input {input.bins:q} --output {params.outdir:q} --outfmt BIN"
            " --summary {output.summary:q} --precision {params.precision:q}"
            " --threads {threads} --warmup {params.warmup:q} {params.backend_flags} > {log:q} 2>&1"


rule gather_summaries:
    input:
        get_shard_summaries,
    output:
        PLAN.summary("{backend}"),
    log:
        artifacts.GATHER_SUMMARIES.log,
    wildcard_constraints:
        backend=BACKEND_PATTERN,
    conda:
        "../envs/deeplabv3.yaml"
    resources:
        **stage_resources("default"),
    params:
        script=script("gather_summaries.py"),
    shell:
        "python {params.script:q} {input:q} --output {output:q} > {log:q} 2>&1"
