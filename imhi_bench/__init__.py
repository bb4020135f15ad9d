"""imhi-bench: evaluation harness and leaderboard for the IMHI benchmark (MentaLLaMA)."""

__version__ = "0.1.0"
