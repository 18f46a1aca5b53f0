# Models, per model name ({model}: model.name or a matrix.models entry): checkpoint -> ONNX
# (verified against PyTorch) -> onnxsim, and what variants make of it: the Winograd rewrite
# (-fp32-winograd), an ATC .om per precision and soc_version (ascend), a TensorRT engine per precision
# (tensorrt; fp16 from rule convert_fp16's model, int8 from rule quantize_tensorrt's). Which of them a
# variant runs: deeplabv3_pipeline/planning/variants.py and its backend's module (backends/).
# (The int8 models are in rules/quantize.smk.)

if config["winograd"]["enabled"] and not CELL.variant.winograd:
    print(
        f"note: winograd.enabled applies at precision fp32 to backends with a -fp32-winograd variant; "
        f"{CELL.variant.name} runs its usual model",
        file=sys.stderr,
    )


wildcard_constraints:
    model=MODEL_PATTERN,


rule export_onnx:
    input:
        checkpoint=get_checkpoint,
    output:
        artifacts.EXPORT_ONNX.output,
    log:
        artifacts.EXPORT_ONNX.log,
    benchmark:
        artifacts.EXPORT_ONNX.benchmark
    conda:
        "../envs/deeplabv3.yaml"
    resources:
        **model_job_resources("export_onnx"),
    params:
        model_config=get_model_config,
        shape=list(INPUT_SHAPE),
        test_mode=get_test_mode_args,
        opset=config["model"]["opset"],
        # a local checkpoint replaced under its name, whatever its mtime, is exported again
        sources=get_checkpoint_fingerprint,
        script=script("export_onnx.py"),
    shell:
        "python {params.script:q} {params.model_config:q} --checkpoint {input.checkpoint:q}"
        " --output-file {output:q} --shape {params.shape:q} {params.test_mode}"
        " --opset-version {params.opset:q} > {log:q} 2>&1"


# Its own step (config model.verify), so that turning it on or off re-exports nothing.
rule verify_onnx:
    input:
        model=artifacts.EXPORT_ONNX.output,
        checkpoint=get_checkpoint,
    output:
        artifacts.VERIFY_ONNX.output,
    log:
        artifacts.VERIFY_ONNX.log,
    benchmark:
        artifacts.VERIFY_ONNX.benchmark
    conda:
        "../envs/deeplabv3.yaml"
    resources:
        **model_job_resources("verify_onnx"),
    params:
        model_config=get_model_config,
        shape=list(INPUT_SHAPE),
        test_mode=get_test_mode_args,
        tolerance=config["model"]["verify_tolerance"],
        script=script("verify_onnx.py"),
    shell:
        "python {params.script:q} {input.model:q} {params.model_config:q} --checkpoint {input.checkpoint:q}"
        " --shape {params.shape:q} {params.test_mode} --tolerance {params.tolerance:q}"
        " --record {output:q} > {log:q} 2>&1"


rule simplify_onnx:
    input:
        artifacts.EXPORT_ONNX.output,
    output:
        artifacts.SIMPLIFY_ONNX.output,
    log:
        artifacts.SIMPLIFY_ONNX.log,
    benchmark:
        artifacts.SIMPLIFY_ONNX.benchmark
    conda:
        "../envs/deeplabv3.yaml"
    resources:
        **model_job_resources("simplify_onnx"),
    params:
        input_shape=f"1,3,{INPUT_SHAPE[0]},{INPUT_SHAPE[1]}",
        script=script("simplify_onnx.py"),
    shell:
        "python {params.script:q} {input:q} {output:q} --input-shape {params.input_shape:q} > {log:q} 2>&1"


rule winograd_onnx:
    input:
        model=get_sim_model,
        check=get_winograd_check_bins,
    output:
        model=artifacts.WINOGRAD_ONNX.output,
        record=artifacts.record_path(artifacts.WINOGRAD_ONNX.output),
    log:
        artifacts.WINOGRAD_ONNX.log,
    benchmark:
        artifacts.WINOGRAD_ONNX.benchmark
    conda:
        "../envs/deeplabv3.yaml"
    resources:
        **stage_resources("winograd_onnx"),
    params:
        tile=config["winograd"]["tile"],
        min_channels=config["winograd"]["min_channels"],
        min_agreement=config["winograd"]["min_pixel_agreement"],
        check_flags=get_check_args,
        script=script("winograd_onnx.py"),
    shell:
        "python {params.script:q} {input.model:q} {output.model:q} --tile {params.tile:q}"
        " --min-channels {params.min_channels:q} {params.check_flags}"
        " --min-agreement {params.min_agreement:q} --record {output.record:q} > {log:q} 2>&1"


rule atc:
    input:
        unpack(get_atc_inputs),
    output:
        artifacts.ATC.output,
    log:
        artifacts.ATC.log,
    benchmark:
        artifacts.ATC.benchmark
    wildcard_constraints:
        soc="Ascend[A-Za-z0-9]+",
        precision="|".join(
            [
                *REGISTRY["ascend"].precisions,
                *(
                    artifacts.MIXED_PRECISION_FOLDER.format(precision=p)
                    for p in REGISTRY["ascend"].mixed_precisions
                ),
            ]
        ),
    conda:
        "../envs/ascend.yaml"
    resources:
        **stage_resources("default"),
    params:
        command=get_atc_command,
    shell:
        "command -v atc > /dev/null || {{ echo 'error: atc is not on PATH: install the CANN toolkit and"
        " source /usr/local/Ascend/ascend-toolkit/set_env.sh' | tee {log:q} >&2; exit 127; }};"
        " {params.command} > {log:q} 2>&1"


rule convert_fp16:
    input:
        get_sim_model,
    output:
        model=artifacts.CONVERT_FP16.output,
        record=artifacts.record_path(artifacts.CONVERT_FP16.output),
    log:
        artifacts.CONVERT_FP16.log,
    benchmark:
        artifacts.CONVERT_FP16.benchmark
    conda:
        "../envs/deeplabv3.yaml"
    resources:
        **stage_resources("default"),
    params:
        script=script("convert_fp16.py"),
    shell:
        "python {params.script:q} {input:q} {output.model:q} --record {output.record:q} > {log:q} 2>&1"


# the mixed fp16 model: the fewest nodes kept fp32 for fp16.target on fp16.check_images bins, judged here in
# ONNX Runtime (tensorrt-fp16-mixed's engine, ascend-fp16-mixed's --keep_dtype file)
rule convert_fp16_mixed:
    input:
        model=get_sim_model,
        check=get_fp16_check_bins,
        labels=get_fp16_check_labels,
    output:
        model=artifacts.CONVERT_FP16_MIXED.output,
        record=artifacts.record_path(artifacts.CONVERT_FP16_MIXED.output),
        keep_dtype=artifacts.KEEP_DTYPE,
    log:
        artifacts.CONVERT_FP16_MIXED.log,
    benchmark:
        artifacts.CONVERT_FP16_MIXED.benchmark
    conda:
        "../envs/deeplabv3.yaml"
    threads: job_threads
    resources:
        **stage_resources("default"),
    params:
        images=config["fp16"]["check_images"],
        mixed_flags=get_fp16_mixed_args,
        label_flags=get_check_label_args,
        script=script("convert_fp16.py"),
    shell:
        "python {params.script:q} {input.model:q} {output.model:q} --check-data {input.check:q}"
        " --check-images {params.images:q} {params.mixed_flags} {params.label_flags}"
        " --keep-dtype {output.keep_dtype:q} --record {output.record:q} > {log:q} 2>&1"


# an engine per precision, and one per mixed precision (tensorrt-<precision>-mixed: its own file)
ENGINES = {
    artifacts.BUILD_ENGINE: get_engine_source,
    artifacts.BUILD_ENGINE_MIXED: get_mixed_engine_source,
}


for step, source in ENGINES.items():

    rule:
        name:
            step.rule
        input:
            source,
        output:
            engine=step.output,
            record=artifacts.record_path(step.output),
        log:
            step.log,
        benchmark:
            step.benchmark
        wildcard_constraints:
            precision="|".join(REGISTRY["tensorrt"].precisions),
        conda:
            "../envs/deeplabv3.yaml"
        resources:
            **stage_resources("infer"),
        params:
            workspace=config["tensorrt"]["workspace_gib"],
            level=config["tensorrt"]["optimization_level"],
            device=config["tensorrt"]["device"],
            script=script("build_engine.py"),
        shell:
            "python {params.script:q} {input:q} {output.engine:q} --precision {wildcards.precision:q}"
            " --workspace-gib {params.workspace:q} --optimization-level {params.level:q}"
            " --device {params.device:q} --record {output.record:q} > {log:q} 2>&1"
