"""Where events come from: each source is an adapter plus its normalisation."""
