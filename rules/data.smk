# Inputs: the (demo) dataset and checkpoint, trainIds labels, and the preprocessed .bin files.

if DEMO_DATA:

    rule demo_dataset:
        output:
            images=[str(frame.image(DATASET_ROOT, SPLIT)) for frame in FRAMES],
            labels=[str(frame.label_ids(DATASET_ROOT, SPLIT)) for frame in FRAMES],
        params:
            images=config["demo"]["images"],
            seed=config["demo"]["seed"],
            shape=f"{INPUT_SHAPE[0]} {INPUT_SHAPE[1]}",
        log:
            "results/logs/demo_dataset.log",
        shell:
            "{PYTHON} {SCRIPTS}/make_demo_data.py dataset --root {DATASET_ROOT} --split {SPLIT}"
            " --count {params.images} --shape {params.shape} --seed {params.seed} > {log} 2>&1"


if DEMO_CHECKPOINT:

    rule demo_checkpoint:
        output:
            CHECKPOINT,
        params:
            model_config=config["model"]["config"],
            seed=config["demo"]["seed"],
        log:
            "results/logs/demo_checkpoint.log",
        benchmark:
            "results/benchmarks/demo_checkpoint.tsv"
        shell:
            "{PYTHON} {SCRIPTS}/make_demo_data.py checkpoint --output {output}"
            " --model-config {params.model_config} --seed {params.seed} > {log} 2>&1"


if frames_needing_train_ids():

    rule labels:
        input:
            label_ids_files(),
        output:
            made_train_ids(),
        params:
            gt_path=str(DATASET_ROOT / "gtFine" / SPLIT),
        log:
            "results/logs/labels.log",
        benchmark:
            "results/benchmarks/labels.tsv"
        shell:
            "{PYTHON} {SCRIPTS}/make_labels.py --gt_path {params.gt_path} --output {MADE_LABELS_DIR} > {log} 2>&1"


for shard_index in SHARDS:

    rule:
        name:
            rule_name("preprocess", shard_index)
        input:
            shard_images(shard_index),
        output:
            shard_bins(shard_index),
        params:
            shard=shard_index,
            num_shards=len(SHARDS),
            input_shape=f"{INPUT_SHAPE[0]} {INPUT_SHAPE[1]}",
            src_path=str(DATASET_ROOT / "leftImg8bit" / SPLIT),
        log:
            f"results/logs/preprocess/shard{shard_index}.log",
        benchmark:
            f"results/benchmarks/preprocess/shard{shard_index}.tsv"
        shell:
            "{PYTHON} {SCRIPTS}/preprocess.py {params.src_path} results/prep_dataset"
            " --input-shape {params.input_shape} --shard {params.shard} --num-shards {params.num_shards}"
            " > {log} 2>&1"
