"""Where subjects come from: the built-in synthetic phantoms and the SMILE-UHURA release (its layout and its
download)."""
