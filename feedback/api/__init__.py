"""Arbiter's REST API (version 1), served under /api/v1/."""
