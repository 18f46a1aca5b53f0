# Inference, per cell (model x variant): results/infer/{data}/{model}/{variant}/{stem}_0.bin
# (ais_bench's layout), one job per shard, and a summary.json gathered from the shards. The model a
# variant runs and the flags its backend needs come from the plan and the backend's module.
# One rule per cell and shard, with no wildcards: Snakemake finds the producer of each of thousands of
# prediction files without matching a pattern, by one set lookup (rules/planning.smk; docs/performance.md,
# "Planning").


for cell in PLAN.cells:
    for shard_index in SHARDS:

        rule:
            name:
                rule_name(cell_rule_name("infer", cell), shard_index)
            input:
                bins=get_shard_bins(shard_index),
                model=PLAN.model_file(cell),
                # read by the runtime beside the model (an IR's weights, an engine's build record)
                companions=PLAN.model_companions(cell),
            output:
                predictions=kept(
                    PLAN.shard_predictions(cell, shard_index), "keep_predictions"
                ),
                summary=PLAN.shard_summary(cell, shard_index),
            log:
                PLAN.step(artifacts.INFER, cell, shard=shard_index).log,
            benchmark:
                PLAN.step(artifacts.INFER, cell, shard=shard_index).benchmark
            conda:
                "../envs/deeplabv3.yaml"
            threads: job_threads
            resources:
                **stage_resources("infer"),
            params:
                outdir=get_prediction_folder,
                backend=cell.backend,
                precision=cell.precision,
                backend_flags=get_backend_args(cell),
                warmup=config["warmup"],
                script=script("infer.py"),
            shell:
                "python {params.script:q} --backend {params.backend:q} --model {input.model:q}"
                " --input {input.bins:q} --output {params.outdir:q} --outfmt BIN"
                " --summary {output.summary:q} --precision {params.precision:q}"
                " --threads {threads} --warmup {params.warmup:q} {params.backend_flags} > {log:q} 2>&1"

    rule:
        name:
            cell_rule_name("gather_summaries", cell)
        input:
            get_shard_summaries(cell),
        output:
            PLAN.summary(cell),
        log:
            PLAN.step(artifacts.GATHER_SUMMARIES, cell).log,
        # one cluster job with the cell's evaluation (profiles/slurm; no effect on a local run)
        group:
            cell_rule_name("metrics", cell)
        conda:
            "../envs/deeplabv3.yaml"
        resources:
            **stage_resources("default"),
        params:
            script=script("gather_summaries.py"),
        shell:
            "python {params.script:q} {input:q} --output {output:q} > {log:q} 2>&1"
