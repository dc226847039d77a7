"""SpineFractureAI library."""
