"""Files on disk: NIfTI volumes read, validated and discovered; outputs written atomically or staged, never
over an input; content hashes."""
