"""spockmip: SPOCKMIP / DS6 cerebral-vessel segmentation, from data to the paper's tables.

snakemake --cores 8                                  # the built-in demo (config/config.yaml)
snakemake --cores 8 --configfile config/paper.yaml   # the SMILE-UHURA protocol
"""

import os

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

from spockmip.errors import SettingsError
from spockmip.settings.workflow import validated_settings
from spockmip.settings.yamlfiles import load_yaml

min_version("9.0")

# The conda environments (envs/) install this working copy in editable mode from SPOCKMIP_SOURCE: Snakemake
# creates each one from a copy of its file in .snakemake/conda/, where a path relative to the file would
# lead elsewhere.
os.environ.update(SPOCKMIP_SOURCE=workflow.basedir)


# The demo config applies only when no --configfile is given: merged under a user's config, its variants
# would be trained too.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


# Snakemake's YAML reader keeps the last of two equal keys (a variant defined twice trains once, silently).
for path in workflow.configfiles:
    try:
        load_yaml(path)
    except SettingsError as error:
        raise WorkflowError(str(error)) from None


# The schema (its defaults filled into config), then the rules between settings: the one path every config
# takes (spockmip train --config files too), and the one way the rules read the config.
try:
    SETTINGS = validated_settings(config)
except SettingsError as error:
    raise WorkflowError(str(error)) from None


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/split.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/predict.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/postprocess.smk"
include: "workflow/rules/summarise.smk"
include: "workflow/rules/published.smk"


# The data set, variants, folds and seeds are those configured: a target outside them (a seed or a fold
# not trained, a typo in a variant) is a rule that matches nothing, not a job.
wildcard_constraints:
    dataset=one_of([DATASET], r"[\w.-]"),
    variant=one_of(VARIANTS, r"\w"),
    model=r"[A-Za-z0-9_]+",
    fold=one_of(FOLDS, r"\d"),
    seed=one_of(SEEDS, r"\d"),
    subject=r"[A-Za-z0-9_.-]+",


rule all:
    default_target: True
    input:
        final_outputs(),
