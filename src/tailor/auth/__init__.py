"""Identity and access: access keys (keys.py), IAM-style policies (policy.py), SigV4 (sigv4.py)."""
