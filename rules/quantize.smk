# int8: the simplified ONNX model quantized after training (static, QDQ, per-channel weights),
# calibrated on real preprocessed images; classifier, final Resize and ArgMax stay float.
#   quantize_onnx     -> results/models/deeplabv3_sim_bs1_int8.onnx    (ONNX Runtime; OpenVINO runs it too)
#   quantize_openvino -> results/models/deeplabv3_sim_bs1_int8_ov.xml  (OpenVINO NNCF; needs the nncf package)
# Each writes <model stem>.json beside the model: settings, calibration files, pixel agreement with fp32.
# Helpers (calibration_bins, check_bins, ...) and INT8_MODEL / INT8_OPENVINO_MODEL are in rules/common.smk.


rule quantize_onnx:
    input:
        model=SIM_MODEL,
        calibration=calibration_bins,
        check=check_bins,
    output:
        model=INT8_MODEL,
        report="results/models/deeplabv3_sim_bs1_int8.json",
    log:
        "results/logs/quantize_onnx.log",
    benchmark:
        "results/benchmarks/quantize_onnx.tsv"
    conda:
        "../envs/deeplabv3.yaml"
    threads: job_threads
    params:
        images=calibration_count,
        check=check_args,
        min_agreement=min_agreement,
        script=script("quantize_onnx.py"),
    shell:
        "python {params.script} {input.model} {output.model} --engine onnxruntime"
        " --calibration-data {input.calibration} --calibration-images {params.images} {params.check}"
        " --min-agreement {params.min_agreement} --settings-json {output.report} > {log} 2>&1"


rule quantize_openvino:
    input:
        model=SIM_MODEL,
        calibration=calibration_bins,
        check=check_bins,
    output:
        model=INT8_OPENVINO_MODEL,
        weights="results/models/deeplabv3_sim_bs1_int8_ov.bin",
        report="results/models/deeplabv3_sim_bs1_int8_ov.json",
    log:
        "results/logs/quantize_openvino.log",
    benchmark:
        "results/benchmarks/quantize_openvino.tsv"
    conda:
        "../envs/deeplabv3.yaml"
    threads: job_threads
    params:
        images=calibration_count,
        check=check_args,
        min_agreement=min_agreement,
        script=script("quantize_onnx.py"),
    shell:
        "python {params.script} {input.model} {output.model} --engine openvino"
        " --calibration-data {input.calibration} --calibration-images {params.images} {params.check}"
        " --min-agreement {params.min_agreement} --settings-json {output.report} > {log} 2>&1"
