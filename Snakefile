# DeepLabV3 (mmsegmentation R50-D8, Cityscapes) validation: the Ascend model-zoo procedure,
# reproducible and incremental, with ONNX Runtime on the CPU as the default backend.
#
#   snakemake --cores 2 results/result.json
#
# Data flow: images -> prep .bin -> (checkpoint -> ONNX -> sim ONNX [-> int8, engine, .om per soc])
#            -> inference per cell (model x variant) -> mIoU in results/cells/{data}/{model}/{variant}/
#            result.json; the configured cell's is results/result.json, every matrix cell's in
#            results/matrix.json.


configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/model.smk"
include: "rules/quantize.smk"
include: "rules/infer.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"
include: "rules/benchmark.smk"
include: "rules/zoo.smk"
include: "rules/debug.smk"
include: "rules/planning.smk"


onstart:
    warn_synthetic()
    check_backend_tools()


onsuccess:
    print_result_summary()
    check_matrix_gate()


rule all:
    default_target: True
    input:
        get_final_targets(),
        get_report_figures(),
