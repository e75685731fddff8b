"""Every setting in one torch-free place: the entry type, the catalogue, the rules between settings, the
workflow's reader of its config, and what is derived from them (the schema, the command-line options).
"""
