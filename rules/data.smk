# Inputs: the (demo) dataset and checkpoint, trainIds labels, and the preprocessed .bin files.
# Every script is handed exactly the files its rule declares (never a folder to list).


if DEMO_DATA:

    rule demo_dataset:
        output:
            images=[str(frame.image(DATASET_ROOT, SPLIT)) for frame in FRAMES],
            labels=[str(frame.label_ids(DATASET_ROOT, SPLIT)) for frame in FRAMES],
        log:
            artifacts.DEMO_DATASET.log,
        conda:
            "../envs/deeplabv3.yaml"
        resources:
            **stage_resources("default"),
        params:
            images=config["demo"]["images"],
            seed=config["demo"]["seed"],
            shape=f"{INPUT_SHAPE[0]} {INPUT_SHAPE[1]}",
            root=get_dataset_root,
            split=SPLIT,
            script=script("make_demo_data.py"),
        shell:
            "python {params.script} dataset --root {params.root} --split {params.split}"
            " --count {params.images} --shape {params.shape} --seed {params.seed} > {log} 2>&1"


if DEMO_CHECKPOINT:

    rule demo_checkpoint:
        output:
            CHECKPOINT,
        log:
            artifacts.DEMO_CHECKPOINT.log,
        benchmark:
            artifacts.DEMO_CHECKPOINT.benchmark
        conda:
            "../envs/deeplabv3.yaml"
        resources:
            **stage_resources("default"),
        params:
            model_config=config["model"]["config"],
            seed=config["demo"]["seed"],
            script=script("make_demo_data.py"),
        shell:
            "python {params.script} checkpoint --output {output}"
            " --model-config {params.model_config} --seed {params.seed} > {log} 2>&1"


if CHECKPOINT_URL:

    rule fetch_checkpoint:
        output:
            CHECKPOINT,
        log:
            artifacts.FETCH_CHECKPOINT.log,
        conda:
            "../envs/deeplabv3.yaml"
        resources:
            **stage_resources("default"),
        params:
            url=CHECKPOINT_URL,
            script=script("fetch_checkpoint.py"),
        shell:
            "python {params.script} {params.url} --output {output} > {log} 2>&1"


if FRAMES_WITHOUT_TRAIN_IDS:

    rule labels:
        input:
            get_label_ids_files(),
        output:
            get_made_train_ids(),
        log:
            artifacts.LABELS.log,
        benchmark:
            artifacts.LABELS.benchmark
        conda:
            "../envs/deeplabv3.yaml"
        resources:
            **stage_resources("default"),
        params:
            script=script("make_labels.py"),
        shell:
            "python {params.script} --label-ids {input} --train-ids {output} > {log} 2>&1"


for shard_index in SHARDS:

    rule:
        name:
            rule_name("preprocess", shard_index)
        input:
            get_shard_images(shard_index),
        output:
            kept(get_shard_bins(shard_index), "keep_prep_bins"),
        log:
            artifacts.PREPROCESS.format(shard=shard_index).log,
        benchmark:
            artifacts.PREPROCESS.format(shard=shard_index).benchmark
        conda:
            "../envs/deeplabv3.yaml"
        resources:
            **stage_resources("default"),
        params:
            input_shape=f"{INPUT_SHAPE[0]} {INPUT_SHAPE[1]}",
            script=script("preprocess.py"),
        shell:
            "python {params.script} --images {input} --outputs {output}"
            " --input-shape {params.input_shape} > {log} 2>&1"
