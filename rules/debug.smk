# The per-layer comparison (config debug; target debug): every tensor of a debug cell's model against its
# model's matrix.reference cell, matched by the ONNX export's names, on debug.images frames, with Ascend
# msit/ait compare's metrics: results/debug/{data}/{model}/{variant}/layers.json, .csv and .png (the
# first tensor past the thresholds marked). A backend not here (tensorrt, ascend) gets its own tool's
# commands in layers.json, planned. Each comparison opens its own copies of the models: the cells'
# inference never runs with extra outputs (scripts/compare_layers.py).


for cell in PLAN.debug_cells:

    rule:
        name:
            cell_rule_name("compare_layers", cell)
        input:
            **get_layer_inputs(cell),
        output:
            **PLAN.layer_outputs(cell),
        log:
            PLAN.step(artifacts.COMPARE_LAYERS, cell).log,
        benchmark:
            PLAN.step(artifacts.COMPARE_LAYERS, cell).benchmark
        conda:
            "../envs/deeplabv3.yaml"
        threads: job_threads
        resources:
            **stage_resources("compare_layers"),
        params:
            stem=lambda wildcards, output: str(Path(output.json).with_suffix("")),
            flags=get_layer_args(cell),
            script=script("compare_layers.py"),
        shell:
            "python {params.script:q} --reference {input.reference:q} --graph {input.graph:q}"
            " --input {input.bins:q} --threads {threads} {params.flags} --output {params.stem:q} > {log:q} 2>&1"


rule debug:
    input:
        get_debug_outputs(),
    localrule: True
