# int8: the simplified ONNX model quantized after training (static, per-channel int8 weights),
# calibrated on real preprocessed images; classifier, final Resize and ArgMax stay float.
#   quantize_onnx     -> QDQ ONNX, uint8 activations (ONNX Runtime; OpenVINO runs it too)
#   quantize_openvino -> OpenVINO IR (NNCF; needs the nncf package)
#   quantize_tensorrt -> QDQ ONNX, symmetric int8 activations (zero point 0: all TensorRT takes) and
#                        float biases (TensorRT dequantizes int8 only),
#                        built into the int8 engine by rule build_engine
# Each writes <model stem>.json beside the model: settings, calibration files, pixel agreement with fp32.

# step -> quantize_onnx.py flags that make its kind of int8 model
QUANTIZERS = {
    artifacts.QUANTIZE_ONNX: "--quantizer onnxruntime",
    artifacts.QUANTIZE_OPENVINO: "--quantizer openvino",
    artifacts.QUANTIZE_TENSORRT: "--quantizer onnxruntime --activation-type int8 --symmetric-activations --float-bias",
}


for step, quantizer_flags in QUANTIZERS.items():

    rule:
        name:
            step.rule
        input:
            model=get_sim_model,
            calibration=get_calibration_bins,
            check=get_int8_check_bins,
        output:
            **quantizer_outputs(step),
        log:
            step.log,
        benchmark:
            step.benchmark
        conda:
            "../envs/deeplabv3.yaml"
        threads: job_threads
        params:
            quantizer_flags=quantizer_flags,
            images=config["int8"]["calibration_images"],
            check_flags=get_check_args,
            min_agreement=get_min_agreement,
            script=script("quantize_onnx.py"),
        shell:
            "python {params.script:q} {input.model:q} {output.model:q} {params.quantizer_flags}"
            " --calibration-data {input.calibration:q} --calibration-images {params.images:q} {params.check_flags}"
            " --min-agreement {params.min_agreement:q} --record {output.record:q} > {log:q} 2>&1"


# int8 with the fewest layers kept in float for the target int8.target (variants <backend>-int8-mixed),
# within int8.search; judged on the check bins (not calibrated on) and, for max_miou_drop, their labels.
#   quantize_onnx_mixed     -> QDQ ONNX: nodes_to_exclude searched in the per-layer comparison's order
#   quantize_openvino_mixed -> OpenVINO IR: NNCF's quantize_with_accuracy_control with the target as metric
#   quantize_tensorrt_mixed -> TensorRT's symmetric QDQ ONNX, searched as ONNX Runtime's (judged in ONNX Runtime)
# Each record (<model stem>.json) holds float_layers, the figures reached, the evaluations and the time.
MIXED_QUANTIZERS = {
    artifacts.QUANTIZE_ONNX_MIXED: QUANTIZERS[artifacts.QUANTIZE_ONNX],
    artifacts.QUANTIZE_OPENVINO_MIXED: QUANTIZERS[artifacts.QUANTIZE_OPENVINO],
    artifacts.QUANTIZE_TENSORRT_MIXED: QUANTIZERS[artifacts.QUANTIZE_TENSORRT],
}


for step, quantizer_flags in MIXED_QUANTIZERS.items():

    rule:
        name:
            step.rule
        input:
            model=get_sim_model,
            calibration=get_calibration_bins,
            check=get_int8_check_bins,
            labels=get_int8_check_labels,
        output:
            **quantizer_outputs(step),
        log:
            step.log,
        benchmark:
            step.benchmark
        conda:
            "../envs/deeplabv3.yaml"
        threads: job_threads
        params:
            quantizer_flags=quantizer_flags,
            images=config["int8"]["calibration_images"],
            check_flags=get_check_args,
            mixed_flags=get_int8_mixed_args,
            label_flags=get_check_label_args,
            script=script("quantize_onnx.py"),
        shell:
            "python {params.script:q} {input.model:q} {output.model:q} {params.quantizer_flags}"
            " --calibration-data {input.calibration:q} --calibration-images {params.images:q} {params.check_flags}"
            " {params.mixed_flags} {params.label_flags} --record {output.record:q} > {log:q} 2>&1"
