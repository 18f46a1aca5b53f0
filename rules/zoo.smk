# The model zoo's support table: the entries of zoo.support are models of the matrix (plan.support);
# this rule reads what the matrix measured of them, and names the reason for each that got no jobs.


rule zoo_support:
    input:
        matrix=artifacts.MATRIX.output,
    output:
        json=artifacts.ZOO_SUPPORT.output,
        markdown="results/zoo/support.md",
    log:
        artifacts.ZOO_SUPPORT.log,
    conda:
        "../envs/deeplabv3.yaml"
    resources:
        **stage_resources("default"),
    params:
        entries=get_support_args(),
        output=lambda wildcards, output: str(Path(output.json).with_suffix("")),
        script=script("zoo.py"),
    shell:
        "python {params.script:q} support --matrix {input.matrix:q} {params.entries}"
        " --output {params.output:q} > {log:q} 2>&1"
