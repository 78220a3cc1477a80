"""Where alerts go: JSON Lines files, the store, webhooks, logs."""
