"""Write what is derived from spockmip.settings, the one home of every setting: config.schema.yaml beside this
script (spockmip.settings.schema) and the generated part of config/README.md, every key's reference
(spockmip.settings.reference; the README's hand-written part above its marker line is kept).

python workflow/schemas/generate.py          # rewrite both
python workflow/schemas/generate.py --check  # exit 1 if either committed file is not current
"""

import sys
from pathlib import Path

from spockmip.settings.reference import config_readme
from spockmip.settings.schema import schema_yaml

SCHEMA = Path(__file__).with_name("config.schema.yaml")
CONFIG_README = Path(__file__).resolve().parents[2] / "config" / "README.md"

if __name__ == "__main__":
    generated = {SCHEMA: schema_yaml(), CONFIG_README: config_readme(CONFIG_README.read_text())}
    if "--check" in sys.argv[1:]:
        stale = [path for path, text in generated.items() if path.read_text() != text]
        for path in generated:
            state = "out of date; run python workflow/schemas/generate.py" if path in stale else "current"
            print(f"{path}: {state}")
        sys.exit(1 if stale else 0)
    for path, text in generated.items():
        path.write_text(text)
        print(f"wrote {path}")
