# Included last, once every rule exists: how Snakemake finds the producer of a file, made fast for
# this workflow's many explicit file lists (docs/performance.md, "Planning").


def index_explicit_outputs():
    """Give every rule whose outputs hold no wildcard an `is_producer` that is one set lookup.

    Snakemake asks each candidate rule whether it makes a file by matching the file against every
    output of the rule, one regular expression each (compiled on first use); with per-frame outputs
    (preprocess, labels, infer) that is frames x frames-per-rule matches and one compile per file.
    For outputs without wildcards "makes this file" is exactly "the file is one of its outputs", so
    the answer is the same; rules with wildcards (the models') keep Snakemake's own matching.
    """
    for each in workflow.rules:
        products = list(each.products())
        if any(product.get_wildcard_names() for product in products):
            continue
        each.is_producer = frozenset(map(str, products)).__contains__


index_explicit_outputs()
