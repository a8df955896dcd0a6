"""The ``imgpro`` client and operator subcommands (upload, keys create, accounts)."""
