"""The results library: reads the results.json files of a tree of runs and makes the tables and curves of
scripts/make_table.py and scripts/plot_curves.py (docs/tables.md). Stdlib only (tabulate and matplotlib
when rendering); imports engine/ and runs/, never the trainers or the scripts.

    names      table rows and columns: method order, dataset keys, display names and order
    records    one Record per usable results.json; what is skipped and why
    identity   the settings a result was made with; cells never mix two of them
    cells      mean +- std of a cell, the test-selected mark and its note
    reported   published numbers (make_table.py --reported)
    fewshot    the few-shot tables (trainers x datasets per shots and backbone)
    protocol_tables  base-to-new and cross-dataset / domain-generalisation tables
    render     text, markdown, csv and latex
    curves     accuracy-vs-shots points (plot_curves.py); curve_figure draws them
    coop_logs  CoOp's parse_test_res.py over Dassl log.txt files (parse_results.py)
"""
