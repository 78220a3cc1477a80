"""The token vault: the only place a raw driver token exists, and only for the instant it is pseudonymised."""
