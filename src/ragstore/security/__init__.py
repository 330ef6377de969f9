"""Who may do what: principals, API keys, users and sessions, permissions, rate limits, usage, the audit log
and the encryption of stored secrets (issue 16)."""
