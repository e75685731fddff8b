"""Write config.schema.yaml from spockmip.settings, the one home of every setting (spockmip.settings.schema).

python workflow/schemas/generate.py          # rewrite the schema
python workflow/schemas/generate.py --check  # exit 1 if the committed schema is not current
"""

import sys
from pathlib import Path

from spockmip.settings.schema import schema_yaml

SCHEMA = Path(__file__).with_name("config.schema.yaml")

if __name__ == "__main__":
    text = schema_yaml()
    if "--check" in sys.argv[1:]:
        current = SCHEMA.read_text() == text
        print(f"{SCHEMA}: {'current' if current else 'out of date; run python workflow/schemas/generate.py'}")
        sys.exit(0 if current else 1)
    SCHEMA.write_text(text)
    print(f"wrote {SCHEMA}")
