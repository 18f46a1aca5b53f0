# Model: checkpoint -> ONNX (verified against PyTorch) -> onnxsim -> ATC .om per soc_version.


rule export_onnx:
    input:
        checkpoint=CHECKPOINT,
    output:
        ONNX_MODEL,
    log:
        "results/logs/export_onnx.log",
    benchmark:
        "results/benchmarks/export_onnx.tsv"
    conda:
        "../envs/deeplabv3.yaml"
    resources:
        **stage_resources("export_onnx"),
    params:
        model_config=config["model"]["config"],
        shape=f"{INPUT_SHAPE[0]} {INPUT_SHAPE[1]}",
        opset=config["model"]["opset"],
        verify="--verify" if config["model"]["verify"] else "",
        tolerance=config["model"]["verify_tolerance"],
        script=script("export_onnx.py"),
    shell:
        "python {params.script} {params.model_config} --checkpoint {input.checkpoint}"
        " --output-file {output} --shape {params.shape} --opset-version {params.opset}"
        " {params.verify} --verify-tolerance {params.tolerance} > {log} 2>&1"


rule simplify_onnx:
    input:
        ONNX_MODEL,
    output:
        SIM_MODEL,
    log:
        "results/logs/simplify_onnx.log",
    benchmark:
        "results/benchmarks/simplify_onnx.tsv"
    conda:
        "../envs/deeplabv3.yaml"
    resources:
        **stage_resources("default"),
    params:
        input_shape=f"1,3,{INPUT_SHAPE[0]},{INPUT_SHAPE[1]}",
        script=script("simplify_onnx.py"),
    shell:
        "python {params.script} {input} {output} --input-shape {params.input_shape} > {log} 2>&1"


rule winograd_onnx:
    input:
        model=SIM_MODEL,
        check=winograd_check_bins,
    output:
        model=WINOGRAD_MODEL,
        report="results/models/deeplabv3_sim_bs1_winograd.json",
    log:
        "results/logs/winograd_onnx.log",
    benchmark:
        "results/benchmarks/winograd_onnx.tsv"
    conda:
        "../envs/deeplabv3.yaml"
    resources:
        **stage_resources("export_onnx"),
    params:
        tile=config["winograd"]["tile"],
        min_channels=config["winograd"]["min_channels"],
        min_agreement=config["winograd"]["min_pixel_agreement"],
        check=check_args,
        script=script("winograd_onnx.py"),
    shell:
        "python {params.script} {input.model} {output.model} --tile {params.tile}"
        " --min-channels {params.min_channels} {params.check}"
        " --min-agreement {params.min_agreement} --report {output.report} > {log} 2>&1"


rule atc:
    input:
        SIM_MODEL,
    output:
        "results/models/deeplabv3_bs1_{soc}.om",
    log:
        "results/logs/atc/{soc}.log",
    benchmark:
        "results/benchmarks/atc/{soc}.tsv"
    wildcard_constraints:
        soc="Ascend[A-Za-z0-9]+",
    conda:
        "../envs/ascend.yaml"
    resources:
        **stage_resources("default"),
    params:
        command=atc_shell_command,
    shell:
        "command -v atc > /dev/null || {{ echo 'error: atc is not on PATH: install the CANN toolkit and"
        " source /usr/local/Ascend/ascend-toolkit/set_env.sh' | tee {log} >&2; exit 127; }};"
        " {params.command} > {log} 2>&1"
