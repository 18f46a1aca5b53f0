# Inputs: the (demo) dataset and checkpoint, trainIds labels, and the preprocessed .bin files.
# Every script is handed exactly the files its rule declares (never a folder to list).


if DEMO_DATA:

    rule demo_dataset:
        output:
            images=get_image_files(),
            labels=[PLAN.label_ids(frame) for frame in FRAMES],
        log:
            artifacts.DEMO_DATASET.format(data=PLAN.data).log,
        conda:
            "../envs/deeplabv3.yaml"
        resources:
            **stage_resources("default"),
        params:
            images=config["demo"]["images"],
            seed=config["demo"]["seed"],
            shape=list(INPUT_SHAPE),
            root=get_dataset_root,
            split=PLAN.split,
            script=script("make_demo_data.py"),
        shell:
            "python {params.script:q} dataset --root {params.root:q} --split {params.split:q}"
            " --count {params.images:q} --shape {params.shape:q} --seed {params.seed:q} > {log:q} 2>&1"


# Both rules where a model's checkpoint is "" (distinct files: demo.checkpoint says which the models read).
if DEMO_MODELS:

    # A checkpoint per model whose checkpoint is "", trained by mmseg's own loop on synthetic frames of
    # another seed than the evaluated ones (config demo.training), in the real format.
    rule train_demo_checkpoint:
        output:
            artifacts.TRAIN_DEMO_CHECKPOINT.output,
        log:
            artifacts.TRAIN_DEMO_CHECKPOINT.log,
        benchmark:
            artifacts.TRAIN_DEMO_CHECKPOINT.benchmark
        wildcard_constraints:
            model="|".join(DEMO_MODELS),
        conda:
            "../envs/deeplabv3.yaml"
        threads: job_threads
        resources:
            **stage_resources("default"),
        params:
            model_config=get_demo_model_config,
            seed=config["demo"]["seed"],
            training=get_training_args(),
            script=script("train_demo_checkpoint.py"),
        shell:
            "python {params.script:q} --model-config {params.model_config:q} --output {output:q}"
            " --seed {params.seed:q} {params.training} --threads {threads} > {log:q} 2>&1"

    # A random checkpoint in the real format per model whose checkpoint is "" (its own architecture).
    rule demo_checkpoint:
        output:
            artifacts.DEMO_CHECKPOINT.output,
        log:
            artifacts.DEMO_CHECKPOINT.log,
        benchmark:
            artifacts.DEMO_CHECKPOINT.benchmark
        wildcard_constraints:
            model="|".join(DEMO_MODELS),
        conda:
            "../envs/deeplabv3.yaml"
        resources:
            **stage_resources("default"),
        params:
            model_config=get_demo_model_config,
            seed=config["demo"]["seed"],
            script=script("make_demo_data.py"),
        shell:
            "python {params.script:q} checkpoint --output {output:q}"
            " --model-config {params.model_config:q} --seed {params.seed:q} > {log:q} 2>&1"


# One download per distinct URL (two models may share a checkpoint), sha256-checked.
for url_index, url in enumerate(CHECKPOINT_URLS):

    rule:
        name:
            (
                "fetch_checkpoint"
                if len(CHECKPOINT_URLS) == 1
                else f"fetch_checkpoint_{url_index}"
            )
        output:
            get_url_checkpoint(url),
        log:
            artifacts.FETCH_CHECKPOINT.format(
                name=Path(get_url_checkpoint(url)).stem
            ).log,
        conda:
            "../envs/deeplabv3.yaml"
        resources:
            **stage_resources("default"),
        params:
            url=url,
            script=script("fetch_checkpoint.py"),
        shell:
            "python {params.script:q} {params.url:q} --output {output:q} > {log:q} 2>&1"


# trainIds where the dataset has none, one job per shard (with frames to label)
for shard_index in [index for index in SHARDS if PLAN.frames_to_label(index)]:

    rule:
        name:
            rule_name("labels", shard_index)
        input:
            get_label_ids_files(shard_index),
        output:
            get_made_train_ids(shard_index),
        log:
            artifacts.LABELS.format(data=PLAN.data, shard=shard_index).log,
        benchmark:
            artifacts.LABELS.format(data=PLAN.data, shard=shard_index).benchmark
        conda:
            "../envs/deeplabv3.yaml"
        resources:
            **stage_resources("default"),
        params:
            shape=list(INPUT_SHAPE),
            sources=get_source_fingerprint(get_source_label_ids(shard_index)),
            script=script("make_labels.py"),
        shell:
            "python {params.script:q} --label-ids {input:q} --train-ids {output:q}"
            " --shape {params.shape:q} > {log:q} 2>&1"


for shard_index in SHARDS:

    rule:
        name:
            rule_name("preprocess", shard_index)
        input:
            get_shard_images(shard_index),
        output:
            kept(get_shard_bins(shard_index), "keep_prep_bins"),
        log:
            artifacts.PREPROCESS.format(data=PLAN.data, shard=shard_index).log,
        benchmark:
            artifacts.PREPROCESS.format(data=PLAN.data, shard=shard_index).benchmark
        conda:
            "../envs/deeplabv3.yaml"
        resources:
            **stage_resources("default"),
        params:
            input_shape=list(INPUT_SHAPE),
            # a source image replaced under its name, whatever its mtime, reruns its shard
            sources=get_source_fingerprint(get_source_images(shard_index)),
            script=script("preprocess.py"),
        shell:
            "python {params.script:q} --images {input:q} --outputs {output:q}"
            " --input-shape {params.input_shape:q} > {log:q} 2>&1"
